"""Silence is safe: on the time-skipping server, hours pass without a decision; irflow escalates over
SNS and the instance stays contained. Nothing is stopped, terminated or released by a timeout."""

from __future__ import annotations

from datetime import timedelta

from irflow.models.incident import Status
from tests.support import notifications, observed_instance, open_incident, quarantine_groups, running_worker, wait_for


async def test_decision_timeout_escalates_and_keeps_the_instance_contained(skipping_env, workload):
    client = skipping_env.client
    async with running_worker(client, decision_timeout_seconds=3600) as settings:
        _, handle = await open_incident(client, settings, workload)
        awaiting = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        assert awaiting.pending_decision.deadline - awaiting.pending_decision.since == timedelta(hours=1)
        contained = observed_instance(workload)

        await skipping_env.sleep(timedelta(hours=3))
        state = await wait_for(handle, lambda s: s.status == Status.ESCALATED, timeout=60)

        assert len(state.escalations) == 1
        assert state.pending_decision is not None, "still waiting for a person"
        after = observed_instance(workload)
        assert after == contained, "a timeout changes nothing in the account"
        assert after["state"] == "running"
        quarantine = quarantine_groups(workload)[0]["GroupId"]
        assert all(groups == [quarantine] for groups in after["enis"].values())
        sent = notifications(workload)
        escalations = [m for m in sent if m["topic"] == workload.escalation_topic_arn]
        # At one hour the escalation; then hourly reminders (to the escalation topic, once escalated).
        subjects = [m["subject"].split(",")[0] for m in escalations]
        assert subjects[0] == "irflow: ESCALATION" and subjects.count("irflow: ESCALATION") == 1
        assert set(subjects[1:]) == {"irflow: REMINDER"} and len(subjects) >= 2
        assert escalations[0]["resource_id"] == workload.instance_id
        assert state.pending_decision.reminders >= 1
        assert not [a for a in state.actions if a.name in ("stop_instance", "terminate_instance")]

        await handle.signal("approve", {"by": "carol", "comment": "late but sure", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    assert observed_instance(workload)["state"] == "stopped"


async def test_reminders_go_to_the_team_before_the_deadline(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, decision_timeout_seconds=3600, decision_reminder_seconds=1) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        # The counter moves before the reminder's SNS message is out: wait for one more than asserted.
        state = await wait_for(handle, lambda s: s.pending_decision and s.pending_decision.reminders >= 3)
        assert state.status == Status.AWAITING_DECISION and not state.escalations
        sent = notifications(workload)
        team = [m["subject"] for m in sent if m["topic"] == workload.notify_topic_arn]
        assert sum("REMINDER" in subject for subject in team) >= 2
        assert not [m for m in sent if m["topic"] == workload.escalation_topic_arn]
        await handle.signal("reject", {"by": "bob", "reason": "done"})
        await handle.result()


async def test_the_timeout_default_can_contain_but_never_destroys(dev_env, workload):
    """Below the auto-containment threshold containment waits for a person; with the `contain` default,
    silence contains (strengthens) — and at the eradication question silence still only escalates."""
    client = dev_env.client
    before = observed_instance(workload)
    async with running_worker(
        client,
        decision_timeout_seconds=3,
        decision_reminder_seconds=0,
        decision_timeout_action="contain",
        auto_contain_min_severity="CRITICAL",
    ) as settings:
        _, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "containment"
        assert observed_instance(workload) == before
        state = await wait_for(handle, lambda s: len(s.escalations) == 2, timeout=60)
        assert state.pending_decision.kind == "eradication" and state.status == Status.ESCALATED
        assert [(d.by, d.via, d.kind, d.stage) for d in state.decisions] == [
            ("irflow", "timeout", "approve", "containment")
        ]
        quarantine = quarantine_groups(workload)[0]["GroupId"]
        after = observed_instance(workload)
        assert all(groups == [quarantine] for groups in after["enis"].values())
        assert after["state"] == "running", "never stopped by a timeout"
        assert not [a for a in state.actions if a.phase == "eradication_recovery"]
        await handle.signal("reject", {"by": "bob", "reason": "done"})
        await handle.result()
