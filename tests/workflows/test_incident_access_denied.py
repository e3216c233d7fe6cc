"""AWS refuses a containment call (the worker's role lacks the permission, an SCP denies it): nothing is retried,
whatever containment already happened is undone, and the incident ends failed, saying which call was refused and
what AWS said, to whoever reads the state, the report or the escalation topic."""

from __future__ import annotations

import json

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from irflow.models.incident import ActionStatus, Status
from tests.support import notifications, observed_instance, open_incident, read_evidence, running_worker, wait_for
from tests.workflows.faults import AwsFaults
from tests.workflows.test_iam_user_playbook import _open as open_key_incident
from tests.workflows.test_iam_user_playbook import observed_user

EC2_REFUSAL = "You are not authorized to perform this operation. Encoded authorization failure message: x1y2"
IAM_REFUSAL = (
    "User: arn:aws:sts::123456789012:assumed-role/irflow-worker/w is not authorized to perform: iam:UpdateAccessKey"
)


def _second_interface(workload) -> str:
    ec2 = boto3.client("ec2", region_name=workload.region)
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
    )["NetworkInterfaces"]
    return next(e["NetworkInterfaceId"] for e in enis if e["Attachment"]["DeviceIndex"] == 1)


async def _refused(dev_env, open_one, workload) -> tuple[WorkflowFailureError, object]:
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_one(client, settings, workload)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    return failure.value, state


def _told(state, workload, *words: str) -> None:
    """The reason is in the workflow's state, in its stored report, and in an escalation message."""
    assert all(w in state.failure_reason for w in words), state.failure_reason
    report = next(e for e in state.evidence if e.kind == "report" and e.key.endswith(".json"))
    assert json.loads(read_evidence(report))["failure_reason"] == state.failure_reason
    escalations = [m for m in notifications(workload) if m["topic"] == workload.escalation_topic_arn]
    assert any("containment FAILED" in m["subject"] and state.failure_reason in m["message"] for m in escalations)


async def test_a_refused_isolation_undoes_the_interface_already_isolated_and_says_why(dev_env, workload):
    before = observed_instance(workload)
    denied = _second_interface(workload)
    faults = AwsFaults(rate=0).install()
    faults.deny(
        "ec2", "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", EC2_REFUSAL, lambda b: denied.encode() in b
    )
    failure, state = await _refused(dev_env, open_incident, workload)

    assert observed_instance(workload) == before, "the first interface, isolated, is back in its groups"
    assert faults.count(kind="denied") == 1, "a refusal is not asked again, by botocore or by Temporal"
    isolation = next(a for a in state.actions if a.name == "isolate_network")
    assert isolation.status == ActionStatus.FAILED
    assert [(c.result["undoes"], c.status) for c in state.compensations] == [("isolate_network", ActionStatus.UNDONE)]
    _told(state, workload, denied, "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", EC2_REFUSAL)
    assert state.failure_reason in str(failure.cause)


async def test_a_refused_key_deactivation_undoes_the_other_steps_and_says_why(dev_env, workload):
    before = observed_user(workload)
    faults = AwsFaults(rate=0).install()
    faults.deny("iam", "UpdateAccessKey", "AccessDenied", IAM_REFUSAL)
    failure, state = await _refused(dev_env, open_key_incident, workload)

    assert observed_user(workload) == before, "tags and the session revocation are undone, the key left Active"
    assert faults.count(kind="denied") == 1
    undone = {c.result["undoes"]: c.status for c in state.compensations}
    assert undone["revoke_user_sessions"] == undone["tag_resource"] == ActionStatus.UNDONE
    _told(state, workload, workload.access_key_id, "UpdateAccessKey", "AccessDenied", IAM_REFUSAL)
    assert state.failure_reason in str(failure.cause)


async def test_a_refused_containment_ends_the_incident_failed(dev_env, workload):
    faults = AwsFaults(rate=0).install()
    faults.deny("iam", "UpdateAccessKey", "AccessDenied", IAM_REFUSAL)
    failure, state = await _refused(dev_env, open_key_incident, workload)
    assert state.status == Status.FAILED
    assert failure.cause.type == "IncidentFailed"
