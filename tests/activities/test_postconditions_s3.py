"""The S3 bucket playbook's postcondition checks, against moto: each holds once its step ran, says what drifted when
someone undoes it from outside, and holds again once the step is re-applied. A deleted bucket is gone, not drift."""

from __future__ import annotations

import json

import boto3
import pytest

from activities.postconditions import POSTCONDITIONS
from activities.postconditions_s3 import check_block_bucket_public_access, check_remove_public_policy_statements
from activities.s3_bucket import describe_bucket_context
from irflow.models.s3 import BucketStepInput, BucketTarget
from tests.support import act
from workflows.s3_bucket_playbook import S3_CONTAINMENT_STEPS

STEPS = {s.name: s for s in S3_CONTAINMENT_STEPS}
EVERYONE_LISTS = {"Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:ListBucket"}


def bucket_step(workload) -> BucketStepInput:
    target = BucketTarget(
        incident_id="inc-s3-post-0001",
        account_id=workload.account_id,
        region=workload.region,
        bucket=workload.public_bucket,
    )
    return BucketStepInput(target=target, prior=describe_bucket_context(target))


@pytest.fixture
def contained(workload) -> BucketStepInput:
    step = bucket_step(workload)
    for containment in STEPS.values():
        act(containment, step)
    return step


def s3():
    return boto3.client("s3")


def test_every_check_fails_before_containment_and_holds_after(workload):
    step = bucket_step(workload)
    for name, containment in STEPS.items():
        before = POSTCONDITIONS[name](containment.argument(step))
        assert (before.step, before.holds) == (name, False), name
        assert before.resources == [workload.public_bucket], name
    for containment in STEPS.values():
        act(containment, step)
    for name, containment in STEPS.items():
        after = POSTCONDITIONS[name](containment.argument(step))
        assert (after.holds, after.gone) == (True, []), f"{name}: {after.found}"


def test_a_public_statement_put_back_is_drift_until_removed_again(workload, contained):
    bucket = workload.public_bucket
    policy = json.loads(s3().get_bucket_policy(Bucket=bucket)["Policy"])
    resource = f"arn:aws:s3:::{bucket}"
    policy["Statement"].append({**EVERYONE_LISTS, "Resource": resource})
    # S3 would refuse a public policy while BlockPublicPolicy is on: whoever loosens it lifts the block first.
    s3().delete_public_access_block(Bucket=bucket)
    s3().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    result = check_remove_public_policy_statements(contained)
    assert result.holds is False
    assert result.found == f"bucket {bucket}'s policy grants access to everyone: statement(s) Everyone"
    assert result.resources == [bucket]
    act(STEPS["remove_public_policy_statements"], contained)
    assert check_remove_public_policy_statements(contained).holds is True


def test_the_public_access_block_deleted_or_loosened_is_drift_until_blocked_again(workload, contained):
    bucket = workload.public_bucket
    s3().delete_public_access_block(Bucket=bucket)
    result = check_block_bucket_public_access(contained)
    assert (result.holds, result.found) == (False, f"bucket {bucket} has no public-access block")
    act(STEPS["block_bucket_public_access"], contained)
    assert check_block_bucket_public_access(contained).holds is True

    loose = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    s3().put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=loose)
    result = check_block_bucket_public_access(contained)
    assert result.holds is False
    assert result.found == f"bucket {bucket}'s public-access block has BlockPublicPolicy, RestrictPublicBuckets off"
    act(STEPS["block_bucket_public_access"], contained)
    assert check_block_bucket_public_access(contained).holds is True


def test_a_bucket_without_a_policy_holds_and_a_deleted_bucket_is_gone(workload, contained):
    bucket = workload.public_bucket
    s3().delete_bucket_policy(Bucket=bucket)
    assert check_remove_public_policy_statements(contained).holds is True
    s3().delete_bucket(Bucket=bucket)
    for name, containment in STEPS.items():
        result = POSTCONDITIONS[name](containment.argument(contained))
        assert (result.holds, result.gone) == (True, [bucket]), name
        assert "no longer exists" in result.found
