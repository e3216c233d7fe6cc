"""Compensation: whatever goes wrong during containment, or when an analyst says false positive, the
instance ends exactly as it was before irflow touched it."""

from __future__ import annotations

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from irflow.models.incident import ActionStatus, Status
from tests.support import observed_instance, open_incident, running_worker, wait_for
from tests.workflows.faults import failing_after_acting, with_side_effect
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS

STEPS = [step.name for step in EC2_CONTAINMENT_STEPS]


@pytest.mark.parametrize("failing_step", STEPS)
async def test_failure_at_any_containment_step_restores_the_instance_exactly(dev_env, workload, failing_step):
    before = observed_instance(workload)
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting(failing_step)) as settings:
        _, handle = await open_incident(client, settings, workload)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    assert "injected failure" in str(failure.value.cause)
    assert state.status == Status.ROLLED_BACK
    assert observed_instance(workload) == before
    k = STEPS.index(failing_step)
    undone = [c.result["undoes"] for c in state.compensations]
    assert undone == list(reversed(STEPS[: k + 1])), "each registered undo runs once, newest first"
    assert all(c.status == ActionStatus.UNDONE for c in state.compensations)


async def test_rejection_as_false_positive_restores_the_instance(dev_env, workload):
    before = observed_instance(workload)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert observed_instance(workload) != before
        await handle.signal("reject", {"by": "bob", "reason": "scheduled pentest"})
        state = await handle.result()
    assert state.status == Status.ROLLED_BACK
    assert observed_instance(workload) == before
    assert [d.by for d in state.decisions if d.accepted] == ["bob"]
    assert len(state.compensations) == len(STEPS)
    assert any(e.kind == "report" for e in state.evidence), "a rolled-back incident still leaves its report"


async def test_instance_vanishing_mid_containment_fails_clearly_and_compensates(dev_env, workload):
    ec2 = boto3.client("ec2", region_name=workload.region)

    def terminate(step):
        ec2.modify_instance_attribute(InstanceId=step.target.instance_id, DisableApiTermination={"Value": False})
        ec2.terminate_instances(InstanceIds=[step.target.instance_id])

    client = dev_env.client
    async with running_worker(client, activities=with_side_effect("deregister_from_target_groups", terminate)) as s:
        _, handle = await open_incident(client, s, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda st: st.status.is_final)
    assert state.status == Status.FAILED
    assert workload.instance_id in state.failure_reason and "vanished" in state.failure_reason
    assert state.compensations, "compensation ran for the steps that were done"
    assert {c.status for c in state.compensations} <= {ActionStatus.UNDONE, ActionStatus.SKIPPED}
