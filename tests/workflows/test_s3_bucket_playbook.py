"""S3 bucket made public: statements for everyone stripped, public access blocked, evidence locked;
rejection (or a failure at any step) restores the bucket's configuration exactly."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from irflow.devstack.demo import sample_bucket_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from tests.support import running_worker, wait_for
from tests.workflows.faults import failing_after_acting, flaky_after_acting
from workflows.incident import IncidentWorkflow
from workflows.s3_bucket_playbook import S3_CONTAINMENT_STEPS

STEPS = [step.name for step in S3_CONTAINMENT_STEPS]


def observed_bucket(workload) -> dict:
    s3, bucket = boto3.client("s3"), workload.public_bucket

    def optional(call, *keys):
        try:
            value = call()
        except s3.exceptions.ClientError:
            return None
        for key in keys:
            value = value[key]
        return value

    return {
        "policy": optional(lambda: s3.get_bucket_policy(Bucket=bucket), "Policy"),
        "public_access_block": optional(
            lambda: s3.get_public_access_block(Bucket=bucket), "PublicAccessBlockConfiguration"
        ),
        "tags": {t["Key"]: t["Value"] for t in optional(lambda: s3.get_bucket_tagging(Bucket=bucket), "TagSet") or []},
    }


async def _open(client, settings, workload):
    event = sample_bucket_finding(workload.public_bucket, workload.account_id, workload.region)
    submission = await submit(client, parse_guardduty(event), settings)
    assert submission.workflow_id.startswith("s3-")
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def test_public_statements_go_public_access_is_blocked_and_evidence_is_kept(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        bucket = observed_bucket(workload)
        assert bucket["public_access_block"] == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        )
        statements = json.loads(bucket["policy"])["Statement"]
        assert [s["Sid"] for s in statements] == ["AppRole"], "only the statement for everyone is removed"
        assert bucket["tags"] == {
            "app": "shop",
            "irflow:incident-id": submission.incident_id,
            "irflow:status": "contained",
        }
        evidence = next(e for e in state.evidence if e.kind == "s3-bucket")
        raw = (
            boto3.client("s3")
            .get_object(Bucket=evidence.bucket, Key=evidence.key, VersionId=evidence.version_id)["Body"]
            .read()
        )
        assert hashlib.sha256(raw).hexdigest() == evidence.sha256
        assert "PublicRead" in json.loads(raw)["prior"]["policy"]
        await handle.signal("approve", {"by": "alice", "comment": "assets moved behind CloudFront"})
        assert (await handle.result()).status == Status.RESOLVED
    assert observed_bucket(workload)["public_access_block"]["BlockPublicPolicy"] is True


async def test_rejection_restores_the_bucket_exactly(dev_env, workload):
    before = observed_bucket(workload)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "public on purpose: the website"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    assert observed_bucket(workload) == before


@pytest.mark.parametrize("failing_step", STEPS)
async def test_a_failure_at_any_step_restores_the_bucket_exactly(dev_env, workload, failing_step):
    before = observed_bucket(workload)
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting(failing_step)) as settings:
        _, handle = await _open(client, settings, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    assert state.status == Status.ROLLED_BACK
    assert observed_bucket(workload) == before


async def test_retried_steps_change_nothing_twice(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, activities=flaky_after_acting(STEPS)) as settings:
        submission, handle = await _open(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        bucket = observed_bucket(workload)
        assert [s["Sid"] for s in json.loads(bucket["policy"])["Statement"]] == ["AppRole"]
        assert bucket["tags"]["irflow:incident-id"] == submission.incident_id
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()
