"""Protected principals and resources: never contained automatically. Their incident opens, records the
finding and waits for two different approvers; the key or role is untouched until then."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from activities.aws import reset_clients
from irflow.devstack.demo import sample_access_key_finding, sample_role_finding
from irflow.intake.router import route
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, ResponsePolicy, Status
from tests.support import running_worker, wait_for
from tests.workflows.test_iam_role_playbook import observed_role, role_id
from tests.workflows.test_iam_user_playbook import observed_user
from workflows.incident import IncidentWorkflow
from workflows.protection import protection_reason, subject_arns


def _state(event: dict, **context) -> IncidentState:
    parsed = parse_guardduty(event)
    where = route(parsed.finding)
    return IncidentState(
        incident_id="x",
        playbook=where.playbook,
        severity=parsed.finding.severity,
        finding=parsed.finding,
        resource_id=where.resource_id,
        received_at=datetime.now(UTC),
        resource_context=context or None,
    )


def test_a_user_is_protected_by_its_arn_glob_its_tag_or_not_at_all():
    state = _state(sample_access_key_finding("ciso", "AKIAEXAMPLECISO00001", "123456789012", "us-east-1"))
    assert subject_arns(state.playbook, state.finding, state.resource_id, {}) == ["arn:aws:iam::123456789012:user/ciso"]
    assert protection_reason(state, ResponsePolicy()) is None
    assert "IRFLOW_PROTECTED" in protection_reason(state, ResponsePolicy(protected=["arn:aws:iam::*:user/ci*"]))
    assert protection_reason(state, ResponsePolicy(protected=["arn:aws:iam::*:user/cfo"])) is None
    tagged = _state(
        sample_access_key_finding("ciso", "AKIAEXAMPLECISO00001", "123456789012", "us-east-1"),
        user_name="ciso",
        tags={"irflow:protected": "True"},
    )
    assert "irflow:protected=true" in protection_reason(tagged, ResponsePolicy())


def test_a_role_is_protected_as_irflow_by_its_sessions_or_its_arn():
    state = _state(sample_role_finding("irflow-worker", "AROAEXAMPLE", None), role_name="irflow-worker")
    own = ResponsePolicy(own_principals=["arn:aws:sts::123456789012:assumed-role/irflow-worker/*"])
    assert "irflow's own principals" in protection_reason(state, own)
    by_role = ResponsePolicy(own_principals=["arn:aws:iam::123456789012:role/irflow-worker"])
    assert protection_reason(state, by_role) is not None
    assert protection_reason(state, ResponsePolicy(own_principals=["arn:aws:iam::*:role/other"])) is None


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
        assert any("irflow's own principals" in r for r in state.plan_reasons), state.plan_reasons
        assert observed_role("irflow-worker") == before
        await handle.execute_update("reject", {"by": "alice", "reason": "irflow itself"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    assert observed_role("irflow-worker") == before
