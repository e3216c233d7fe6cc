"""Who may decide, through which door, and what a refusal leaves behind.

Updates (the CLI's door) answer; a refused update is rejected by its validator and leaves no event in
the history. Signals (the Temporal UI's door) cannot answer: a refused signal is recorded as refused
and changes nothing.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError

from irflow.devstack.demo import DEMO_APPROVERS, sample_access_key_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import DecisionOutcome, Status
from tests.support import notifications, observed_instance, open_incident, running_worker, wait_for
from workflows.incident import IncidentWorkflow


async def _settled_history(handle) -> list:
    """The history once the workflow is idle (the phase-change notification may still be running)."""
    previous: list = []
    for _ in range(50):
        events = list((await handle.fetch_history()).events)
        if previous and len(events) == len(previous):
            return events
        previous = events
        await asyncio.sleep(0.3)
    raise AssertionError("the workflow never went idle")


async def test_an_unknown_approver_is_refused_through_both_doors(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        events = await _settled_history(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("reject", {"by": "mallory", "reason": "let me in"})
        assert "not a configured approver" in str(refused.value.cause)
        after = list((await handle.fetch_history()).events)
        assert after == events, "a refused update leaves no trace in history"
        assert "mallory" not in str(after)

        await handle.signal("reject", {"by": "mallory", "reason": "let me in"})
        state = await wait_for(handle, lambda s: len(s.decisions) == 1)
        [decision] = state.decisions
        assert (decision.by, decision.accepted, decision.via) == ("mallory", False, "signal")
        assert "not a configured approver" in decision.refusal
        assert state.status == Status.AWAITING_DECISION and observed_instance(workload)["state"] == "running"

        outcome = await handle.execute_update("reject", {"by": "bob", "reason": "scanner"}, result_type=DecisionOutcome)
        assert outcome.accepted and outcome.kind == "reject"
        assert (await handle.result()).status == Status.ROLLED_BACK


async def test_the_principal_named_in_the_finding_cannot_decide_its_own_incident(dev_env, workload):
    approvers = {
        **DEMO_APPROVERS,
        "mallory": {"roles": ["approver"], "principals": [f"arn:aws:iam::123456789012:user/{workload.iam_user}"]},
    }
    client = dev_env.client
    async with running_worker(client, approvers=approvers) as settings:
        event = sample_access_key_finding(workload.iam_user, workload.access_key_id, workload.account_id)
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        for by in ("mallory", workload.iam_user):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update("reject", {"by": by, "reason": "that was me, promise"})
            assert "named in the finding" in str(refused.value.cause) or "not a configured approver" in str(
                refused.value.cause
            )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("reject", {"by": "mallory", "reason": "that was me"})
        assert "nobody decides their own incident" in str(refused.value.cause)
        await handle.execute_update("reject", {"by": "alice", "reason": "drill"})
        assert (await handle.result()).status == Status.ROLLED_BACK


async def test_a_critical_incident_needs_two_different_approvers_before_anything_destructive(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload, severity=9.0)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.severity == "CRITICAL" and state.pending_decision.approvals_required == 2

        first = await handle.execute_update(
            "approve", {"by": "alice", "comment": "confirmed", "eradication": "terminate"}, result_type=DecisionOutcome
        )
        assert first.accepted and first.approvals == ["alice"] and "waiting for a second" in first.message
        with pytest.raises(WorkflowUpdateFailedError) as again:
            await handle.execute_update("approve", {"by": "alice", "comment": "really"})
        assert "second, different approver" in str(again.value.cause)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert observed_instance(workload)["state"] == "running", "one approval destroys nothing"

        second = await handle.execute_update("approve", {"by": "bob", "comment": "agreed"}, result_type=DecisionOutcome)
        assert second.accepted and second.approvals == ["alice", "bob"]
        final = await handle.result()
    assert final.status == Status.RESOLVED and final.eradication == "terminate"
    assert observed_instance(workload)["state"] == "terminated"
    assert [(d.by, d.kind, d.via) for d in final.decisions] == [
        ("alice", "approve", "update"),
        ("bob", "approve", "update"),
    ]


async def test_release_lifts_containment_after_recovery_and_notes_are_kept(dev_env, workload):
    before = observed_instance(workload)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        noted = await handle.execute_update(
            "note", {"by": "dave", "text": "reimaged from golden AMI"}, result_type=DecisionOutcome
        )
        assert noted.accepted
        await handle.signal("release", {"by": "carol", "comment": "recovered and patched"})
        final = await handle.result()
    assert final.status == Status.RESOLVED and "released" in final.failure_reason
    assert observed_instance(workload) == before, "containment lifted exactly"
    # One SNS message per phase change, JSON with a short subject, on the team topic.
    team = [m for m in notifications(workload) if m["topic"] == workload.notify_topic_arn]
    assert [m["subject"].rsplit(" ", 1)[-1] if "→" in m["subject"] else "decision" for m in team] == [
        "detection_analysis",
        "containment",
        "evidence",
        "decision",
        "eradication_recovery",
        "post_incident",
        "done",
    ]
    assert all(m["status"] and m["phase"] and m["resource_id"] == workload.instance_id for m in team)
    assert all(len(m["subject"]) <= 100 for m in team)
    assert [(d.kind, d.by) for d in final.decisions] == [("note", "dave"), ("release", "carol")]
    assert any("reimaged from golden AMI" in t.event for t in final.timeline)
