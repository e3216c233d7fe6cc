"""Silence is safe: on the time-skipping server, hours pass without a decision; irflow escalates over
SNS and the instance stays contained. Nothing is stopped, terminated or released by a timeout."""

from __future__ import annotations

from datetime import timedelta

from models.incident import Status
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
        assert len(escalations) == 1
        assert "ESCALATION" in escalations[0]["subject"] and escalations[0]["resource_id"] == workload.instance_id
        assert not [a for a in state.actions if a.name in ("stop_instance", "terminate_instance")]

        await handle.signal("approve", {"by": "carol", "comment": "late but sure", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    assert observed_instance(workload)["state"] == "stopped"
