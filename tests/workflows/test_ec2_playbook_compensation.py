"""Compensation: whatever goes wrong during containment, or when an analyst says false positive, the
instance ends exactly as it was before irflow touched it."""

from __future__ import annotations

import time

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
    # Isolation first, alone; then the other steps at once, every undo registered before the first acts: when one
    # of those fails, the others have acted too (the failure waits for them). Every registered undo runs once,
    # newest first.
    taken = STEPS[:1] if failing_step == "isolate_network" else STEPS
    undone = [c.result["undoes"] for c in state.compensations]
    assert undone == list(reversed(taken)), "each registered undo runs once, newest first"
    failed = [a.name for a in state.actions if a.status == ActionStatus.FAILED]
    assert failed == [failing_step]
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
    # Between isolation and the other steps (taken at once, they would each find it gone).
    async with running_worker(client, activities=with_side_effect("enrich_instance_context", terminate)) as s:
        _, handle = await open_incident(client, s, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda st: st.status.is_final)
    assert state.status == Status.FAILED
    assert workload.instance_id in state.failure_reason and "vanished" in state.failure_reason
    assert state.compensations, "compensation ran for the steps that were done"
    assert {c.status for c in state.compensations} <= {ActionStatus.UNDONE, ActionStatus.SKIPPED}


async def test_containment_steps_are_taken_at_once(dev_env, workload):
    """Protection waits, inside its own step, until the network is isolated: taken in order, it would wait for
    ever (isolation comes after it in the list); taken at once, isolation goes on meanwhile."""
    ec2 = boto3.client("ec2", region_name=workload.region)

    def until_isolated(step):
        enis = [eni.network_interface_id for eni in step.prior.network_interfaces]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]
            if all(len(eni["Groups"]) == 1 and eni["Groups"][0]["GroupName"] == "irflow-quarantine" for eni in found):
                return
            time.sleep(0.05)
        raise AssertionError("isolation did not happen while protection was under way")

    client = dev_env.client
    async with running_worker(client, activities=with_side_effect("protect_instance", until_isolated)) as settings:
        _, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.contained_at is not None or s.status.is_final)
    assert state.contained_at is not None, state.failure_reason
    assert all(a.status == ActionStatus.DONE for a in state.actions if a.name == "protect_instance")
