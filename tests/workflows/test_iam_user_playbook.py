"""IAM user credentials, end to end through a dev server with moto as the account: the key is Inactive,
the user's older sessions are denied, evidence is locked; approval deletes, rejection restores."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from irflow.devstack.demo import sample_access_key_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from tests.support import running_worker, wait_for
from tests.workflows.faults import failing_after_acting, flaky_after_acting
from workflows.iam_user_playbook import IAM_USER_CONTAINMENT_STEPS
from workflows.incident import IncidentWorkflow

STEPS = [step.name for step in IAM_USER_CONTAINMENT_STEPS]


def observed_user(workload) -> dict:
    iam = boto3.client("iam")
    name = workload.iam_user
    try:
        iam.get_login_profile(UserName=name)
        login = True
    except iam.exceptions.NoSuchEntityException:
        login = False
    return {
        "keys": {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]},
        "policies": {
            p: iam.get_user_policy(UserName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_user_policies(UserName=name)["PolicyNames"]
        },
        "tags": {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]},
        "login_profile": login,
    }


async def _open(client, settings, workload, **kwargs):
    event = sample_access_key_finding(
        workload.iam_user, workload.access_key_id, workload.account_id, workload.region, **kwargs
    )
    submission = await submit(client, parse_guardduty(event), settings)
    assert workload.iam_user not in submission.workflow_id and workload.access_key_id not in submission.workflow_id
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def test_the_leaked_key_is_deactivated_sessions_denied_and_deleted_on_approval(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        user = observed_user(workload)
        assert user["keys"] == {workload.access_key_id: "Inactive", workload.other_access_key_id: "Active"}
        policy = user["policies"][f"irflow-revoke-sessions-{submission.incident_id}"]
        statement = (json.loads(policy) if isinstance(policy, str) else policy)["Statement"][0]
        assert statement["Effect"] == "Deny" and statement["Action"] == "*"
        cutoff = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        assert state.received_at.strftime("%Y-%m-%dT%H:%M") <= cutoff
        assert user["tags"]["irflow:incident-id"] == submission.incident_id and user["login_profile"]
        evidence = next(e for e in state.evidence if e.kind == "iam-user")
        body = boto3.client("s3").get_object(Bucket=evidence.bucket, Key=evidence.key, VersionId=evidence.version_id)
        raw = body["Body"].read()
        assert hashlib.sha256(raw).hexdigest() == evidence.sha256
        document = json.loads(raw)
        assert {k["access_key_id"] for k in document["user"]["access_keys"]} == {
            workload.access_key_id,
            workload.other_access_key_id,
        }
        assert document["credential_report_row"]["user"] == workload.iam_user
        await handle.signal("approve", {"by": "alice", "comment": "key used from a TOR exit"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    after = observed_user(workload)
    assert after["keys"] == {workload.other_access_key_id: "Active"} and not after["login_profile"]


async def test_rejection_restores_the_user_exactly(dev_env, workload):
    before = observed_user(workload)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "the deploy bot, from our own NAT"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert observed_user(workload) == before


@pytest.mark.parametrize("failing_step", STEPS)
async def test_a_failure_at_any_step_restores_the_user_exactly(dev_env, workload, failing_step):
    before = observed_user(workload)
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting(failing_step)) as settings:
        _, handle = await _open(client, settings, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    assert state.status == Status.ROLLED_BACK
    assert observed_user(workload) == before


async def test_retried_steps_change_nothing_twice(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, activities=flaky_after_acting(STEPS)) as settings:
        submission, handle = await _open(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        user = observed_user(workload)
        assert list(user["policies"]) == [f"irflow-revoke-sessions-{submission.incident_id}"]
        assert user["keys"][workload.access_key_id] == "Inactive"
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()
