"""Instance-role credentials used from outside AWS: every older session of the role is denied, the role
is tagged, its evidence kept, and the instance the credentials came from gets its own incident.
Rejection (or a failure at any step) restores the role exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from irflow.devstack.demo import sample_role_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from tests.support import open_incident, read_evidence, running_worker, wait_for
from tests.workflows.faults import failing_after_acting, flaky_after_acting
from workflows.iam_role_playbook import IAM_ROLE_CONTAINMENT_STEPS
from workflows.incident import IncidentWorkflow

STEPS = [step.name for step in IAM_ROLE_CONTAINMENT_STEPS]
MALICIOUS_IP = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"


def observed_role(role: str) -> dict:
    iam = boto3.client("iam")
    return {
        "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]},
        "inline": {
            name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        },
        "attached": sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]),
    }


def role_id(role: str) -> str:
    return boto3.client("iam").get_role(RoleName=role)["Role"]["RoleId"]


async def _open(client, settings, workload, **kwargs):
    kwargs.setdefault("instance_id", workload.instance_id)
    role = kwargs.pop("role_name", workload.role_name)
    event = sample_role_finding(role, role_id(role), account_id=workload.account_id, region=workload.region, **kwargs)
    submission = await submit(client, parse_guardduty(event), settings)
    assert submission.workflow_id.startswith("iam-role-")
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def test_older_sessions_are_denied_and_the_source_instance_gets_an_incident(dev_env, workload):
    client = dev_env.client
    before_containment = datetime.now(UTC).replace(microsecond=0)
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.related_incidents)
        role = observed_role(workload.role_name)
        assert role["tags"]["irflow:incident-id"] == submission.incident_id
        # (the instance's own incident, opened below, may already have added its own policy)
        document = role["inline"][f"irflow-revoke-sessions-{submission.incident_id}"]
        [statement] = document["Statement"]
        assert statement["Effect"] == "Deny" and statement["Action"] == "*" and statement["Resource"] == "*"
        cutoff = datetime.fromisoformat(statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
        assert before_containment <= cutoff <= datetime.now(UTC)

        assert state.resource_context["instances_using_role"] == sorted(
            [workload.instance_id, workload.other_instance_id]
        )
        evidence = next(e for e in state.evidence if e.kind == "iam-role")
        raw = read_evidence(evidence)
        assert json.loads(raw)["session"]["source_instances"] == [workload.instance_id]

        # The instance the credentials left is an incident of its own, and the EC2 playbook isolates it.
        [related] = state.related_incidents
        assert related == f"ec2-{workload.account_id}-{workload.region}-{workload.instance_id}"
        instance_incident = client.get_workflow_handle(related)
        instance_state = await wait_for(
            instance_incident, lambda s: s.status == Status.AWAITING_DECISION and s.contained_at is not None
        )
        assert instance_state.playbook == "ec2-instance"
        assert instance_state.finding.type.endswith("InstanceCredentialExfiltration.OutsideAWS")
        await instance_incident.signal("reject", {"by": "bob", "reason": "test done with the instance"})
        await instance_incident.result()

        await handle.signal("approve", {"by": "alice", "comment": "keys rotated, trust policy reviewed"})
        assert (await handle.result()).status == Status.RESOLVED
    assert list(observed_role(workload.role_name)["inline"]) == [f"irflow-revoke-sessions-{submission.incident_id}"]


async def test_an_instance_already_in_an_incident_is_joined_not_opened_twice(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        instance_submission, instance_incident = await open_incident(client, settings, workload)
        await wait_for(instance_incident, lambda s: s.status == Status.AWAITING_DECISION)
        _, handle = await _open(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.related_incidents)
        assert state.related_incidents == [instance_submission.workflow_id]
        assert any(f"joined incident {instance_submission.incident_id}" in t.event for t in state.timeline)
        instance_state = await wait_for(instance_incident, lambda s: len(s.findings_absorbed) == 2)
        assert instance_state.incident_id == instance_submission.incident_id
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{instance_submission.workflow_id}'")]
        assert len(runs) == 1
        for incident in (handle, instance_incident):
            await incident.signal("reject", {"by": "bob", "reason": "done"})
            await incident.result()


async def test_without_a_named_source_every_instance_carrying_the_role_gets_an_incident(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, auto_contain_min_severity="CRITICAL") as settings:
        # Below the threshold everywhere: the instances' incidents wait for approval and change nothing.
        _, handle = await _open(client, settings, workload, instance_id=None, session_name="unknown")
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("approve", {"by": "alice", "comment": "contain the role"})
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.related_incidents)
        assert sorted(state.related_incidents) == sorted(
            f"ec2-{workload.account_id}-{workload.region}-{i}"
            for i in (workload.instance_id, workload.other_instance_id)
        )
        for incident in [handle, *map(client.get_workflow_handle, state.related_incidents)]:
            await wait_for(incident, lambda s: s.status == Status.AWAITING_DECISION)
            await incident.signal("reject", {"by": "bob", "reason": "done"})
            await incident.result()


async def test_rejection_restores_the_role_exactly(dev_env, workload):
    before = observed_role(workload.role_name)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(
            client, settings, workload, instance_id=None, session_name="ci-pipeline", finding_type=MALICIOUS_IP
        )
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.related_incidents == [], "not credentials taken from an instance: no instance incident"
        await handle.signal("reject", {"by": "bob", "reason": "our own CI runner"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    assert observed_role(workload.role_name) == before


async def test_the_role_is_found_from_the_principal_id_when_the_finding_names_none(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        event = sample_role_finding(
            workload.role_name,
            role_id(workload.role_name),
            None,
            workload.account_id,
            session_name="x",
            finding_type=MALICIOUS_IP,
        )
        del event["detail"]["resource"]["accessKeyDetails"]["userName"]
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.resource_context["role_name"] == workload.role_name
        assert f"irflow-revoke-sessions-{submission.incident_id}" in observed_role(workload.role_name)["inline"]
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()


async def test_a_service_linked_role_is_triaged_not_changed(dev_env, workload):
    iam = boto3.client("iam")
    linked = iam.create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")["Role"]
    before = observed_role(linked["RoleName"])
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(client, settings, workload, role_name=linked["RoleName"], instance_id=None)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "triage"
        assert any("service-linked" in reason for reason in state.plan_reasons)
        assert any(e.kind == "iam-role" for e in state.evidence)
        await handle.signal("approve", {"by": "alice"})
        assert (await handle.result()).status == Status.RESOLVED
    assert observed_role(linked["RoleName"]) == before


@pytest.mark.parametrize("failing_step", STEPS)
async def test_a_failure_at_any_step_restores_the_role_exactly(dev_env, workload, failing_step):
    before = observed_role(workload.role_name)
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting(failing_step)) as settings:
        _, handle = await _open(client, settings, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    assert state.status == Status.ROLLED_BACK
    assert state.related_incidents == [], "no instance incident when containment failed"
    assert observed_role(workload.role_name) == before


async def test_retried_steps_change_nothing_twice(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, activities=flaky_after_acting(STEPS)) as settings:
        submission, handle = await _open(
            client, settings, workload, instance_id=None, session_name="ci", finding_type=MALICIOUS_IP
        )
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        role = observed_role(workload.role_name)
        assert list(role["inline"]) == [f"irflow-revoke-sessions-{submission.incident_id}"]
        assert role["tags"]["irflow:incident-id"] == submission.incident_id
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()
