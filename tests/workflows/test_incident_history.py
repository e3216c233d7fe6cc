"""Bounded history: a storm of findings joining one incident never grows a run's history past its bound. The incident
continues as new while it waits for a decision, carrying its state over, and afterwards still decides, undoes
exactly what it did, and reports every finding it absorbed. bench/history_storm.py runs the full 10,000-finding storm
at the default bound and prints its figures."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import boto3
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from irflow.cli.incidents import _decide
from irflow.devstack.demo import sample_access_key_finding, sample_finding
from irflow.intake.submit import finding_delivery, submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Status
from tests.support import observed_instance, open_incident, running_worker, wait_for
from tests.workflows.test_iam_user_playbook import observed_user
from workflows.incident import IncidentWorkflow

EVENTS_PER_RUN = 500  # the smallest IRFLOW_HISTORY_EVENTS_PER_RUN allows, so a CI-sized storm switches often
# A run's history stops growing once it is past the bound and its pending work is done; signals arriving while the
# switch gets ready still land on it. Measured: about 60 events past the bound (16 signals in flight, two busy cores).
RUN_BOUND = 2 * EVENTS_PER_RUN
STORM = 1200  # the CI storm; bench/history_storm.py sends 10,000 at the default bound
INSTANCE_STORM = 600  # an instance's guard re-checks more steps per finding: more events each, fewer needed
QUESTION_STORM = 800  # before containment a finding costs about one event: enough for one switch


def access_key_event(workload, count: int = 1, severity: float = 8.0) -> dict:
    event = sample_access_key_finding(
        workload.iam_user, workload.access_key_id, workload.account_id, workload.region, severity=severity
    )
    event["detail"]["service"]["count"] = count
    return event


async def open_access_key_incident(client: Client, settings, workload, **finding) -> WorkflowHandle:
    submission = await submit(client, parse_guardduty(access_key_event(workload, **finding)), settings)
    return client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


class Storm:
    """`findings` repeats of the finding (GuardDuty's count going up, each its own queue message with its original
    record), signalled `in_flight` at a time. A signal the server refuses (it does while a run's switch to the next
    waits for the signals it already has) is sent again, as the listener leaves its message on the queue."""

    def __init__(self, workload, findings: int, event: Callable[..., dict] = access_key_event) -> None:
        self.deliveries = [
            finding_delivery(parse_guardduty(event(workload, count=n + 2)), datetime.now(UTC), "storm", f"storm-{n}")
            for n in range(findings)
        ]
        self.refused = 0
        self.seconds = 0.0

    async def send(self, client: Client, workflow_id: str, in_flight: int = 64) -> float:
        handle = client.get_workflow_handle(workflow_id)
        started = time.monotonic()
        for at in range(0, len(self.deliveries), in_flight):
            await asyncio.gather(*(self._signal(handle, d) for d in self.deliveries[at : at + in_flight]))
        self.seconds = time.monotonic() - started
        return self.seconds

    async def _signal(self, handle: WorkflowHandle, delivery) -> None:
        for attempt in range(100):
            try:
                return await handle.signal("add_finding", delivery)
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    raise
                self.refused += 1
                await asyncio.sleep(min(0.05 * 2**attempt, 1))
        raise AssertionError(f"{delivery.delivery_id} refused 100 times")


async def storm(client: Client, workflow_id: str, workload, findings: int, event=access_key_event) -> float:
    """A storm the incident's switches keep up with: 16 in flight (bench/history_storm.py sends 64: see its figures
    for a storm faster than a run replays)."""
    return await Storm(workload, findings, event).send(client, workflow_id, in_flight=16)


def instance_event(workload, count: int = 1) -> dict:
    event = sample_finding(workload.instance_id, workload.account_id, workload.region)
    event["detail"]["service"]["count"] = count
    return event


async def run_lengths(client: Client, workflow_id: str, failed: list[list[int]] | None = None) -> list[int]:
    """Every run's history length, oldest first, following each run back to the one it continued (and in `failed`,
    each run's failed workflow tasks: where a switch lost the race with a signal)."""
    lengths, run_id = [], None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        if failed is not None:
            failure = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            failed.insert(0, [e.event_id for e in history.events if e.event_type == failure])
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return lengths[::-1]
        run_id = started.continued_execution_run_id


def report_json(workload, state: IncidentState) -> dict:
    key = next(k for k in state.report_keys if k.endswith("report.json"))
    body = boto3.client("s3").get_object(Bucket=workload.evidence_bucket, Key=key)["Body"].read()
    return json.loads(body)


async def test_a_storm_of_findings_stays_bounded_and_the_incident_still_decides_and_undoes(dev_env, workload):
    client = dev_env.client
    before = observed_user(workload)
    async with running_worker(client, history_events_per_run=EVENTS_PER_RUN) as settings:
        handle = await open_access_key_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.pending_decision is not None and s.pending_decision.kind == "eradication")
        assert observed_user(workload)["keys"][workload.access_key_id] == "Inactive"
        seconds = await storm(client, handle.id, workload, STORM)
        state = await wait_for(handle, lambda s: s.finding_deliveries == STORM + 1, timeout=60)
        print(f"\n{STORM} findings signalled in {seconds:.1f}s ({STORM / seconds:.0f}/s)")
        assert state.absorbed_count() == STORM + 1, "every repeat counted once, none lost in a switch"
        assert state.findings_summary.ids == [state.finding.id], "one finding, repeated"
        assert len(state.findings_absorbed) <= 20, "the latest few kept whole, the rest counted"
        lengths = await run_lengths(client, handle.id)
        print(f"runs: {len(lengths)}, history lengths: {lengths}")
        assert len(lengths) >= 3 and max(lengths) < RUN_BOUND, lengths
        assert state.findings_summary.runs == len(lengths)
        assert state.pending_decision.kind == "eradication" and state.status == Status.AWAITING_DECISION

        outcome = await _decide(client, handle.id, "reject", {"reason": "our own key rotation test"}, "alice", None)
        assert outcome.accepted, outcome.message
        final = await handle.result()

    assert final.status == Status.ROLLED_BACK
    assert observed_user(workload) == before, "the key Active again, the session denial and the tag gone"
    undone = {c.result["undoes"] for c in final.compensations}
    assert undone == {"tag_resource", "deactivate_access_key", "revoke_user_sessions"}, undone
    report = report_json(workload, final)
    assert report["findings_absorbed"] == STORM + 1 and report["finding_deliveries"] == STORM + 1
    assert [(d["kind"], d["by"], d["via"]) for d in report["decisions"]] == [("reject", "alice", "update")]


async def test_a_pending_question_outlives_the_switch_with_its_deadline(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, history_events_per_run=EVENTS_PER_RUN, decision_timeout_seconds=7200) as settings:
        # LOW: containment itself waits for an analyst, and the storm comes while it does.
        handle = await open_access_key_incident(client, settings, workload, severity=2.0)
        asked = await wait_for(handle, lambda s: s.pending_decision is not None)
        assert asked.pending_decision.kind == "containment"
        first_run = (await handle.describe()).run_id
        await storm(client, handle.id, workload, QUESTION_STORM)
        state = await wait_for(handle, lambda s: s.finding_deliveries == QUESTION_STORM + 1, timeout=60)
        assert (await handle.describe()).run_id != first_run, "the incident continued as new"
        assert state.pending_decision == asked.pending_decision, "the same question, since and deadline"
        assert observed_user(workload)["keys"][workload.access_key_id] == "Active", "nothing contained unasked"

        outcome = await _decide(client, handle.id, "approve", {"comment": "contain it"}, "dave", None)
        assert outcome.accepted, outcome.message
        state = await wait_for(
            handle, lambda s: s.pending_decision is not None and s.pending_decision.kind == "eradication"
        )
        assert observed_user(workload)["keys"][workload.access_key_id] == "Inactive"
        assert [(d.kind, d.by, d.stage) for d in state.decisions] == [("approve", "dave", "containment")]
        await handle.signal("approve", {"by": "alice", "comment": "confirmed"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    assert [(d.by, d.stage) for d in final.decisions] == [("dave", "containment"), ("alice", "eradication")]
    assert workload.access_key_id not in observed_user(workload)["keys"], "eradication deleted the key"
    assert final.absorbed_count() == QUESTION_STORM + 1


async def test_an_instance_contained_through_a_storm_gets_its_network_back_exactly(dev_env, workload):
    client = dev_env.client
    before = observed_instance(workload)
    async with running_worker(client, history_events_per_run=EVENTS_PER_RUN) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(
            handle, lambda s: s.status == Status.AWAITING_DECISION and s.pending_decision.kind == "eradication"
        )
        contained = observed_instance(workload)
        assert contained["enis"] != before["enis"] and contained["asg_member"] == []
        await storm(client, handle.id, workload, INSTANCE_STORM, instance_event)
        state = await wait_for(handle, lambda s: s.finding_deliveries == INSTANCE_STORM + 1, timeout=60)
        assert state.findings_summary.runs > 1, "the incident continued as new"
        assert observed_instance(workload) == contained, "still contained, as it was"
        await handle.signal("reject", {"by": "alice", "reason": "a scanner we run"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK and final.absorbed_count() == INSTANCE_STORM + 1
    assert observed_instance(workload) == before, "groups, Auto Scaling, target groups, profile, tags restored"
    assert all(c.status == "undone" for c in final.compensations), [(c.name, c.status) for c in final.compensations]
