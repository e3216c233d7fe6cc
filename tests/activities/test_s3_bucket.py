"""S3 bucket activities against in-process moto: the context is the configuration exactly as S3 returned it,
the statements granting everyone go and the others stay, public access is blocked with all four settings, each
step twice changes the bucket once and its undo restores it exactly, and the evidence matches its hash."""

from __future__ import annotations

import json

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities import s3_bucket as steps
from irflow.devstack.demo import DemoWorkload
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.s3 import BucketStepInput, BucketTarget
from tests.support import act, assert_step_contract, read_evidence, undo
from workflows.s3_bucket_playbook import S3_CONTAINMENT_STEPS

INCIDENT_ID = "inc-s3-0001"
OURS = {"irflow:incident-id": INCIDENT_ID, "irflow:status": "contained"}
ALL_BLOCKED = dict.fromkeys(("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True)
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def observed_bucket(bucket: str) -> dict:
    """What a responder would check on the bucket, read straight from (moto's) S3. A configuration that does not
    exist is None (no policy, no public-access block, no tag set at all), which is not the same as an empty one."""
    s3 = boto3.client("s3")

    def optional(call, *keys):
        try:
            value = call()
        except s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in steps._MISSING:
                return None
            raise
        for key in keys:
            value = value[key]
        return value

    tags = optional(lambda: s3.get_bucket_tagging(Bucket=bucket), "TagSet")
    acl = s3.get_bucket_acl(Bucket=bucket)
    return {
        "policy": optional(lambda: s3.get_bucket_policy(Bucket=bucket), "Policy"),
        "public_access_block": optional(
            lambda: s3.get_public_access_block(Bucket=bucket), "PublicAccessBlockConfiguration"
        ),
        "tags": None if tags is None else {t["Key"]: t["Value"] for t in tags},
        "acl": {"Owner": acl["Owner"], "Grants": acl["Grants"]},
        "ownership": optional(lambda: s3.get_bucket_ownership_controls(Bucket=bucket), "OwnershipControls"),
    }


def statements(bucket: str) -> list[dict]:
    return json.loads(boto3.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]


def _target(workload: DemoWorkload, bucket: str | None = None) -> BucketTarget:
    return BucketTarget(
        incident_id=INCIDENT_ID,
        account_id=workload.account_id,
        region=workload.region,
        bucket=workload.public_bucket if bucket is None else bucket,
    )


def _step(workload: DemoWorkload, bucket: str | None = None) -> BucketStepInput:
    """The step input the playbook makes: the target and its describe step's context."""
    target = _target(workload, bucket)
    return BucketStepInput(target=target, prior=steps.describe_bucket_context(target))


def _statement(sid: str, principal, effect: str = "Allow", bucket: str = "b") -> dict:
    return {
        "Sid": sid,
        "Effect": effect,
        "Principal": principal,
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }


def _bucket_with_policy(name: str, policy: dict | str) -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(Bucket=name, Policy=policy if isinstance(policy, str) else json.dumps(policy))
    return name


# --- what the bucket was ---


def test_the_context_records_the_configuration_exactly_as_s3_returned_it(workload):
    prior = _step(workload).prior
    s3 = boto3.client("s3")
    assert prior.bucket == workload.public_bucket and prior.location == "us-east-1"
    assert prior.policy == s3.get_bucket_policy(Bucket=workload.public_bucket)["Policy"], "the string, not a parse"
    assert [s["Sid"] for s in json.loads(prior.policy)["Statement"]] == ["PublicRead", "AppRole"]
    assert prior.public_access_block is None
    assert prior.ownership is None
    acl = s3.get_bucket_acl(Bucket=workload.public_bucket)
    assert prior.acl == {"Owner": acl["Owner"], "Grants": acl["Grants"]}
    assert prior.tags == {"app": "shop"}


def test_the_context_records_ownership_a_public_acl_and_a_partial_block(workload):
    s3, bucket = boto3.client("s3"), workload.public_bucket
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    )
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    partial = {**ALL_BLOCKED, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=partial)
    prior = _step(workload).prior
    assert prior.ownership == "BucketOwnerPreferred"
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in prior.acl["Grants"]
    assert prior.public_access_block == partial


def test_a_bucket_without_policy_or_tags_is_recorded_as_having_none(workload):
    boto3.client("s3").create_bucket(Bucket="plain-bucket")
    prior = _step(workload, "plain-bucket").prior
    assert (prior.policy, prior.public_access_block, prior.tags) == (None, None, {})


def test_a_missing_bucket_is_not_found(workload):
    with pytest.raises(ApplicationError) as missing:
        steps.describe_bucket_context(_target(workload, "no-such-bucket-anywhere"))
    assert missing.value.type == NOT_FOUND and missing.value.non_retryable


@pytest.mark.parametrize(
    "bucket",
    ["", "not/a bucket", "b;rm -rf /", "b$(id)x", "../evidence", "x" * 256],
    ids=["nameless", "invalid-name", "shell", "substitution", "path", "too-long"],
)
def test_a_nameless_or_invalid_bucket_is_refused_and_not_retried(workload, bucket):
    """Like the Lambda and RDS playbooks' nameless targets: InvalidRequest, non-retryable."""
    with pytest.raises(ApplicationError) as refused:
        steps.describe_bucket_context(_target(workload, bucket))
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable


@pytest.mark.parametrize("where", [{"account_id": "1234;id"}, {"region": "us-east-1/../x"}], ids=["account", "region"])
def test_a_crafted_account_or_region_is_refused_and_not_retried(workload, where):
    with pytest.raises(ApplicationError) as refused:
        steps.describe_bucket_context(_target(workload, workload.public_bucket).model_copy(update=where))
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable


# --- every containment step: twice is once, its undo restores exactly ---


@pytest.mark.parametrize("containment", S3_CONTAINMENT_STEPS, ids=lambda c: c.name)
def test_each_step_twice_changes_the_bucket_once_and_its_undo_restores_it_exactly(workload, containment):
    assert_step_contract(containment, _step(workload), lambda: observed_bucket(workload.public_bucket))


def test_all_steps_then_all_undos_in_reverse_restore_the_bucket_exactly(workload):
    step, before = _step(workload), observed_bucket(workload.public_bucket)
    assert all(act(c, step).changed for c in S3_CONTAINMENT_STEPS)
    contained = observed_bucket(workload.public_bucket)
    assert contained["public_access_block"] == ALL_BLOCKED
    assert [s["Sid"] for s in statements(workload.public_bucket)] == ["AppRole"]
    assert contained["tags"] == {"app": "shop", **OURS}
    assert (contained["acl"], contained["ownership"]) == (before["acl"], before["ownership"])
    assert [act(c, step).changed for c in S3_CONTAINMENT_STEPS] == [False] * len(S3_CONTAINMENT_STEPS)

    assert all(undo(c, step).changed for c in reversed(S3_CONTAINMENT_STEPS))
    after = observed_bucket(workload.public_bucket)
    assert after == before
    assert after["policy"] == step.prior.policy, "the policy string S3 returned, byte for byte"
    assert not any(undo(c, step).changed for c in reversed(S3_CONTAINMENT_STEPS))
    assert observed_bucket(workload.public_bucket) == before


# --- the policy: everyone's statements go, the others stay ---


def test_the_statement_granting_everyone_is_removed_and_the_others_are_kept(workload):
    step = _step(workload)
    original = json.loads(step.prior.policy)
    result = steps.remove_public_policy_statements(step)
    assert result.detail == {"removed_statements": ["PublicRead"], "kept": 1}
    remaining = json.loads(boto3.client("s3").get_bucket_policy(Bucket=workload.public_bucket)["Policy"])
    assert remaining == {**original, "Statement": [original["Statement"][1]]}, "the rest exactly as it was"


@pytest.mark.parametrize(
    ("principal", "grants_everyone"),
    [
        ("*", True),
        ({"AWS": "*"}, True),
        ({"AWS": ["arn:aws:iam::111122223333:root", "*"]}, True),
        ({"AWS": "arn:aws:iam::111122223333:root"}, False),
        ({"Service": "cloudfront.amazonaws.com"}, False),
    ],
    ids=["star", "aws-star", "aws-list-with-star", "another-account", "a-service"],
)
def test_every_way_of_granting_everyone_is_recognised(workload, principal, grants_everyone):
    bucket = "shared-bucket"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            _statement("Probe", principal, bucket=bucket),
            _statement("DenyInsecure", "*", effect="Deny", bucket=bucket) | {"Action": "s3:*"},
        ],
    }
    step = _step(workload, _bucket_with_policy(bucket, policy))
    assert steps.remove_public_policy_statements(step).changed is grants_everyone
    expected = ["DenyInsecure"] if grants_everyone else ["Probe", "DenyInsecure"]
    assert [s["Sid"] for s in statements(bucket)] == expected, "a Deny for everyone is never removed"


def test_a_policy_that_only_grants_everyone_is_deleted_and_put_back_exactly(workload):
    # S3 keeps the policy as it was written: its spacing, key order and a statement without a Sid.
    written = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",' + (
        '"Resource":"arn:aws:s3:::open-bucket/*"}}'
    )
    step = _step(workload, _bucket_with_policy("open-bucket", written))
    assert step.prior.policy == written
    removed = steps.remove_public_policy_statements(step)
    assert removed.detail == {"removed_statements": ["#0"], "kept": 0}
    assert observed_bucket("open-bucket")["policy"] is None
    assert steps.restore_bucket_policy(step).changed is True
    assert observed_bucket("open-bucket")["policy"] == written


@pytest.mark.parametrize("policy", [None, "account-only"], ids=["no-policy", "no-public-statement"])
def test_a_policy_granting_no_one_everything_is_left_alone(workload, policy):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="private-bucket")
    if policy:
        owner = {"AWS": f"arn:aws:iam::{workload.account_id}:root"}
        s3.put_bucket_policy(
            Bucket="private-bucket",
            Policy=json.dumps({"Version": "2012-10-17", "Statement": [_statement("Own", owner)]}),
        )
    step, before = _step(workload, "private-bucket"), observed_bucket("private-bucket")
    result = steps.remove_public_policy_statements(step)
    assert result.changed is False and result.detail["reason"]
    assert steps.restore_bucket_policy(step).changed is False
    assert observed_bucket("private-bucket") == before


# --- the public-access block ---


def test_all_four_public_access_block_settings_are_turned_on(workload):
    step = _step(workload)
    assert steps.block_bucket_public_access(step).detail == ALL_BLOCKED
    assert observed_bucket(workload.public_bucket)["public_access_block"] == ALL_BLOCKED


@pytest.mark.parametrize(
    "partial",
    [
        {**ALL_BLOCKED, "BlockPublicPolicy": False, "RestrictPublicBuckets": False},
        dict.fromkeys(ALL_BLOCKED, False),
    ],
    ids=["acls-blocked-only", "all-off-explicitly"],
)
def test_a_partial_block_is_completed_and_its_undo_puts_the_partial_one_back(workload, partial):
    boto3.client("s3").put_public_access_block(Bucket=workload.public_bucket, PublicAccessBlockConfiguration=partial)
    step = _step(workload)
    assert steps.block_bucket_public_access(step).changed is True
    assert observed_bucket(workload.public_bucket)["public_access_block"] == ALL_BLOCKED
    assert steps.restore_bucket_public_access(step).changed is True
    assert observed_bucket(workload.public_bucket)["public_access_block"] == partial, "not deleted: put back"


def test_a_bucket_already_fully_blocked_is_left_alone(workload):
    boto3.client("s3").put_public_access_block(
        Bucket=workload.public_bucket, PublicAccessBlockConfiguration=ALL_BLOCKED
    )
    step, before = _step(workload), observed_bucket(workload.public_bucket)
    assert steps.block_bucket_public_access(step).changed is False
    assert steps.restore_bucket_public_access(step).changed is False
    assert observed_bucket(workload.public_bucket) == before


# --- evidence ---


def test_the_evidence_holds_the_configuration_before_containment_and_what_an_investigator_asks_next(workload):
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=workload.public_bucket, VersioningConfiguration={"Status": "Enabled"})
    step = _step(workload)
    for containment in S3_CONTAINMENT_STEPS:
        act(containment, step)
    evidence = steps.collect_bucket_evidence(step)
    assert evidence.kind == "s3-bucket"
    assert evidence.key == f"incidents/{INCIDENT_ID}/s3/{workload.public_bucket}/configuration.json"
    document = json.loads(read_evidence(evidence))

    prior = document["prior"]
    assert prior["policy"] == step.prior.policy and "PublicRead" in prior["policy"], "the policy before containment"
    assert prior["public_access_block"] is None and prior["tags"] == {"app": "shop"}
    assert prior["acl"]["Grants"] == step.prior.acl["Grants"]
    assert document["versioning"]["Status"] == "Enabled"
    assert "LoggingEnabled" not in document["logging"], "access logging is off: the investigator must know"
    assert "encryption" in document

    again = steps.collect_bucket_evidence(step)
    assert (again.key, again.version_id, again.sha256) == (evidence.key, evidence.version_id, evidence.sha256)
