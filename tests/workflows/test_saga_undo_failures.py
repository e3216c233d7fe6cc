"""No undo is ever made to fail by another: when one undo fails for good, every other undo still runs (its resource
restored, checked on AWS), and the one that failed is said where a responder looks: the incident's state, its
stored report, and the escalation topic."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowFailureError

from irflow.models.incident import ActionStatus, Status
from tests.support import notifications, observed_instance, open_incident, read_evidence, running_worker, wait_for
from tests.workflows.faults import failing_after_acting, failing_for_good
from tests.workflows.test_iam_user_playbook import _open as open_key_incident
from tests.workflows.test_iam_user_playbook import observed_user
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS

LEFT_CONTAINED = ("termination_protection", "shutdown_behavior")  # what restore_instance_protection puts back


def _undos(state) -> dict[str, tuple[ActionStatus, str | None]]:
    return {c.result["undoes"]: (c.status, c.error) for c in state.compensations}


def _reported(state) -> list[dict]:
    """The undos the stored report lists as failed."""
    report = next(e for e in state.evidence if e.kind == "report" and e.key.endswith(".json"))
    return [c for c in json.loads(read_evidence(report))["compensations"] if c["status"] == ActionStatus.UNDO_FAILED]


async def test_a_failing_undo_leaves_every_other_undo_to_run_after_a_rejection(dev_env, workload):
    before = observed_instance(workload)
    client = dev_env.client
    async with running_worker(client, activities=failing_for_good("restore_instance_protection")) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "scheduled pentest"})
        state = await handle.result()

    after = observed_instance(workload)
    assert {k: v for k, v in after.items() if k not in LEFT_CONTAINED} == {
        k: v for k, v in before.items() if k not in LEFT_CONTAINED
    }, "network, groups, target groups, profile and tags are back"
    assert after["termination_protection"] is True, "the failed undo really left its step in place"
    undos = _undos(state)
    assert set(undos) == {step.name for step in EC2_CONTAINMENT_STEPS if step.undo}, "every undo ran"
    assert undos.pop("protect_instance")[0] == ActionStatus.UNDO_FAILED
    assert {status for status, _ in undos.values()} == {ActionStatus.UNDONE}
    failed = _reported(state)
    assert [c["name"] for c in failed] == ["restore_instance_protection"]
    assert "refused for good" in failed[0]["error"]


async def test_a_failing_undo_leaves_every_other_undo_to_run_after_a_failed_containment(dev_env, workload):
    before = observed_user(workload)
    activities = failing_for_good("remove_user_session_revocation", failing_after_acting("deactivate_access_key"))
    client = dev_env.client
    async with running_worker(client, activities=activities) as settings:
        submission, handle = await open_key_incident(client, settings, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)

    after = observed_user(workload)
    assert after["keys"] == before["keys"] and after["tags"] == before["tags"], "key Active again, tags restored"
    assert list(after["policies"]) == [f"irflow-revoke-sessions-{submission.incident_id}"], "the failed undo's step"
    undos = _undos(state)
    assert undos.pop("revoke_user_sessions")[0] == ActionStatus.UNDO_FAILED
    assert undos == {"deactivate_access_key": (ActionStatus.UNDONE, None), "tag_resource": (ActionStatus.UNDONE, None)}
    assert [c["name"] for c in _reported(state)] == ["remove_user_session_revocation"]


async def test_a_failing_undo_is_escalated_and_named_in_the_outcome(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, activities=failing_for_good("restore_instance_protection")) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "scheduled pentest"})
        state = await handle.result()
    assert "restore_instance_protection" in (state.failure_reason or "")
    escalations = [m for m in notifications(workload) if m["topic"] == workload.escalation_topic_arn]
    assert any(
        "restore_instance_protection" in m["message"] and "refused for good" in m["message"] for m in escalations
    )
