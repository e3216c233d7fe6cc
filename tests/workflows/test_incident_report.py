"""The post-incident report of a completed incident, checked against Temporal's own history of it.

The report is written by the `write_report` activity near the end of `_finish`, so it cannot list
what runs from then on. Exactly three activities do, always in this order:

* `write_report` itself (its action record is appended once it has returned, i.e. after the report
  was rendered);
* `write_manifest`, the final manifest, which lists the report objects;
* `publish_notification`, the closing "incident resolved" message.

Everything before them is in the report, in the order the workflow recorded it: an action is appended
when its activity's result reaches the workflow, so the report's order is the order of the activities'
closing events in the history (which is not their scheduling order: evidence is collected in parallel).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import boto3
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from irflow.models.evidence import EvidenceObject
from irflow.models.incident import Phase, Status
from tests.support import open_incident, read_evidence, running_worker, wait_for

AFTER_THE_REPORT = ["write_report", "write_manifest", "publish_notification"]

CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed_event_attributes", "done"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed_event_attributes", "failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out_event_attributes", "failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("activity_task_canceled_event_attributes", "failed"),
}


def _at(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _local_activity(event) -> dict | None:
    """A local activity's marker (a containment step, say): its name and outcome, recorded when the workflow task
    that ran it completed (so after the activity ended: `local`)."""
    marker = event.marker_recorded_event_attributes
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED or marker.marker_name != "core_local_activity":
        return None
    data = json.loads(marker.details["data"].payloads[0].data)
    at = _at(event.event_time)
    status = "failed" if marker.HasField("failure") else "done"
    return {"name": data["activity_type"], "status": status, "scheduled_at": at, "closed_at": at, "local": True}


def _activities(history: WorkflowHistory) -> tuple[list[str], list[dict]]:
    """Activity names in scheduling order, and each activity as it closed (in closing order); a local activity is
    both at its marker."""
    scheduled: dict[int, tuple[str, datetime]] = {}
    closed = []
    for event in history.events:
        if (local := _local_activity(event)) and local["name"] == "load_response_policy":
            continue  # the worker's policy, read when the incident starts: the incident's rules, not an action
        if local:
            scheduled[event.event_id] = (local["name"], local["scheduled_at"])
            closed.append(local)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, _at(event.event_time))
        elif event.event_type in CLOSED:
            field, outcome = CLOSED[event.event_type]
            name, scheduled_at = scheduled[getattr(event, field).scheduled_event_id]
            closed.append(
                {"name": name, "status": outcome, "scheduled_at": scheduled_at, "closed_at": _at(event.event_time)}
            )
    return [name for name, _ in scheduled.values()], closed


def _decision_signals(history: WorkflowHistory) -> list[tuple[str, dict]]:
    """approve/reject signals (the incident is opened by signal-with-start `add_finding`, not a decision)."""
    signals = []
    for event in history.events:
        attributes = event.workflow_execution_signaled_event_attributes
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and attributes.signal_name in (
            "approve",
            "reject",
        ):
            (payload,) = attributes.input.payloads
            signals.append((attributes.signal_name, json.loads(payload.data)))
    return signals


def _report_object(evidence: list[EvidenceObject], incident_id: str, name: str) -> EvidenceObject:
    (found,) = [e for e in evidence if e.key == f"incidents/{incident_id}/report/{name}"]
    return found


def _html_action_names(page: str) -> list[str]:
    section = page.split('<section id="actions">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td><code>([^<]*)</code></td>', section)
    assert [int(number) for number, _ in rows] == list(range(1, len(rows) + 1))
    return [name for _, name in rows]


def _markdown_action_names(markdown: str) -> list[str]:
    section = markdown.split("\n## Actions\n", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[1] for line in section.splitlines() if re.match(r"\| \d+ \| ", line)]


async def test_the_report_lists_every_action_the_history_shows_in_order_with_the_metrics(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.phase == Phase.DECISION)
        await handle.signal("approve", {"by": "alice", "comment": "confirmed <C2> beaconing", "eradication": "stop"})
        final = await handle.result()
        history = await handle.fetch_history()
    assert final.status == Status.RESOLVED

    # The stored report, read back from the evidence bucket (bytes checked against their SHA-256).
    report = json.loads(read_evidence(_report_object(final.evidence, final.incident_id, "report.json")))
    reported = [(a["name"], a["status"]) for a in report["actions"]]

    # Every activity the history shows, in the order its result reached the workflow: the report's
    # actions, then exactly the three that run after the report is written.
    scheduled, closed = _activities(history)
    assert [(c["name"], c["status"]) for c in closed] == reported + [(name, "done") for name in AFTER_THE_REPORT]
    assert sorted(scheduled) == sorted(c["name"] for c in closed), "every activity scheduled has closed"
    assert [a.name for a in final.actions] == [name for name, _ in reported] + AFTER_THE_REPORT
    assert report["compensations"] == [] and final.compensations == []
    assert {"look_at_instance", "isolate_network", "snapshot_volumes", "stop_instance"} <= {
        name for name, _ in reported
    }

    # Each action's recorded times bracket its activity in the history.
    # A local activity's marker is written when the workflow task that ran it completes: after it finished.
    for action, event in zip(report["actions"], closed, strict=False):
        started, finished = datetime.fromisoformat(action["started_at"]), datetime.fromisoformat(action["finished_at"])
        if event.get("local"):
            assert started <= finished <= event["closed_at"], action["name"]
        else:
            assert started <= event["scheduled_at"] <= event["closed_at"] <= finished, action["name"]

    # The decision in the report is the signal in the history.
    assert _decision_signals(history) == [
        ("approve", {"by": "alice", "comment": "confirmed <C2> beaconing", "eradication": "stop"})
    ]
    assert [(d["kind"], d["by"], d["comment"], d["stage"], d["via"], d["accepted"]) for d in report["decisions"]] == [
        ("approve", "alice", "confirmed <C2> beaconing", "eradication", "signal", True)
    ]

    # Metrics: present up to closing and in order; the stored report carries the closing time too.
    milestones = {k: datetime.fromisoformat(v) if v else None for k, v in report["milestones"].items()}
    order = ["first_observed", "detected", "contained", "first_decision", "decided", "recovered", "closed"]
    assert all(milestones[name] is not None for name in order), milestones
    assert [milestones[name] for name in order] == sorted(milestones[name] for name in order)
    assert milestones["first_observed"] == final.finding.first_seen, "GuardDuty's eventFirstSeen"
    assert milestones["first_decision"] == milestones["decided"], "one decision: contained automatically"
    last_containment = [a for a in report["actions"] if a["phase"] == "containment"][-1]
    assert milestones["contained"] == datetime.fromisoformat(last_containment["finished_at"])
    (eradication,) = [a for a in report["actions"] if a["name"] == "stop_instance"]
    assert eradication["phase"] == "eradication_recovery"
    assert milestones["recovered"] == datetime.fromisoformat(eradication["finished_at"])
    assert milestones["closed"] == final.closed_at
    metrics = report["metrics"]
    from_observation = ["observed_to_detected_s", "observed_to_contained_s", "observed_to_decided_s"]
    from_observation.append("observed_to_recovered_s")
    values = [metrics[name] for name in from_observation]
    assert None not in values and values == sorted(values) and values[0] >= 0, metrics
    assert metrics["observed_to_detected_s"] >= 360, "the sample finding was first seen six minutes before"
    for name in ("detected_to_contained_s", "detected_to_decided_s", "contained_to_decided_s"):
        assert metrics[name] is not None and metrics[name] >= 0, name
    assert (
        metrics["decided_to_recovered_s"] >= 0 and metrics["observed_to_closed_s"] >= metrics["observed_to_recovered_s"]
    )

    # The HTML page and the Markdown are stored too, locked, hashing to their records, same actions.
    html_object = _report_object(final.evidence, final.incident_id, "report.html")
    page = read_evidence(html_object).decode()
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=html_object.bucket, Key=html_object.key, VersionId=html_object.version_id)
    assert head["ContentType"].startswith("text/html") and head["ObjectLockMode"] == "COMPLIANCE"
    assert html_object.lock_mode == "COMPLIANCE" and html_object.retain_until is not None
    assert "confirmed &lt;C2&gt; beaconing" in page and "<C2>" not in page
    markdown = read_evidence(_report_object(final.evidence, final.incident_id, "report.md")).decode()
    assert _html_action_names(page) == _markdown_action_names(markdown) == [name for name, _ in reported]
