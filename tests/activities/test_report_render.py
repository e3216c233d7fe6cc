"""The post-incident report, rendered from an incident record built by hand (no AWS, no Temporal)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from activities.report import render_markdown, report_document
from devstack.demo import sample_finding
from models.ec2 import InstanceContext
from models.finding import parse_guardduty
from models.incident import (
    ActionRecord,
    ActionStatus,
    Decision,
    DecisionKind,
    Eradication,
    EvidenceObject,
    IncidentState,
    MemoryCaptureResult,
    Phase,
    SnapshotEvidence,
    Status,
    TimelineEntry,
)

INSTANCE_ID = "i-0a1b2c3d4e5f60718"
FINDING_AT = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)  # first seen 6 minutes before this
RECEIVED_AT = FINDING_AT + timedelta(seconds=30)
CONTAINED_AT = RECEIVED_AT + timedelta(seconds=42.5)
DECIDED_AT = RECEIVED_AT + timedelta(minutes=20)
MANIFEST_SHA = "a" * 64
REPORT_INPUT_SHA = "0123456789abcdef" * 4


def _action(name: str, phase: Phase, status: ActionStatus, offset_s: int, **extra) -> ActionRecord:
    start = RECEIVED_AT + timedelta(seconds=offset_s)
    return ActionRecord(
        name=name, phase=phase, status=status, started_at=start, finished_at=start + timedelta(seconds=2), **extra
    )


def _state(**overrides) -> IncidentState:
    finding = parse_guardduty(sample_finding(INSTANCE_ID, "111122223333", "us-east-1", now=FINDING_AT)).finding
    fields = dict(
        incident_id="ec2-111122223333-us-east-1-i-0a1b2c3d4e5f60718-20260301T090030Z",
        playbook="ec2-instance",
        status=Status.RESOLVED,
        phase=Phase.DONE,
        severity=finding.severity,
        finding=finding,
        resource_id=INSTANCE_ID,
        context=InstanceContext(
            instance_id=INSTANCE_ID,
            account_id="111122223333",
            region="us-east-1",
            state="running",
            tags={"Name": "web-1"},
            captured_at=RECEIVED_AT,
        ),
        plan_reasons=["member of Auto Scaling group shop-web: it will be detached"],
        actions=[
            _action("isolate_network", Phase.CONTAINMENT, ActionStatus.DONE, 5, result={"enis": 2}),
            _action("detach_from_asg", Phase.CONTAINMENT, ActionStatus.DONE, 8, result={"group": "shop-web"}),
            _action("revoke_sessions", Phase.CONTAINMENT, ActionStatus.FAILED, 12, error="AccessDenied | iam"),
        ],
        compensations=[_action("undo_detach_from_asg", Phase.CONTAINMENT, ActionStatus.UNDONE, 20)],
        decisions=[
            Decision(
                kind=DecisionKind.APPROVE,
                by="alice@example.com",
                at=DECIDED_AT,
                comment="confirmed C2 traffic",
                eradication=Eradication.TERMINATE,
                via="update",
                stage="eradication",
            )
        ],
        evidence=[
            EvidenceObject(
                kind="manifest",
                bucket="evidence-bkt",
                key="incidents/x/manifest.json",
                sha256=MANIFEST_SHA,
                size=2048,
                version_id="v-manifest-1",
                retain_until=datetime(2026, 4, 1, tzinfo=UTC),
                lock_mode="COMPLIANCE",
            ),
            EvidenceObject(
                kind="finding",
                bucket="evidence-bkt",
                key="incidents/x/finding.json",
                sha256=REPORT_INPUT_SHA,
                size=512,
            ),
        ],
        snapshots=[SnapshotEvidence(snapshot_id="snap-0001", volume_id="vol-0001", state="completed")],
        memory_capture=MemoryCaptureResult(command_id="cmd-42", status="Success", document="irflow-avml"),
        timeline=[
            TimelineEntry(at=RECEIVED_AT, phase=Phase.DETECTION, event="finding received"),
            TimelineEntry(at=CONTAINED_AT, phase=Phase.CONTAINMENT, event="instance isolated"),
            TimelineEntry(at=DECIDED_AT, phase=Phase.DECISION, event="approved by alice@example.com"),
        ],
        eradication=Eradication.TERMINATE,
        received_at=RECEIVED_AT,
        contained_at=CONTAINED_AT,
        decided_at=DECIDED_AT,
    )
    fields.update(overrides)
    return IncidentState(**fields)


def _section(markdown: str, title: str) -> str:
    """The text of one `## title` section, up to the next heading."""
    after = markdown.split(f"## {title}", 1)[1]
    return after.split("\n## ", 1)[0]


def test_header_names_incident_status_finding_and_resource():
    state = _state()
    markdown = render_markdown(state)
    assert markdown.startswith(f"# Incident {state.incident_id}\n")
    assert "resolved" in markdown
    assert state.finding.type in markdown and state.finding.id in markdown
    assert f"`{INSTANCE_ID}` in 111122223333/us-east-1" in markdown
    assert "terminate" in markdown


def test_timeline_lists_every_entry_in_order():
    timeline = _section(render_markdown(_state()), "Timeline")
    events = ["finding received", "instance isolated", "approved by alice@example.com"]
    positions = [timeline.index(event) for event in events]
    assert positions == sorted(positions)
    assert CONTAINED_AT.isoformat() in timeline


def test_every_action_appears_with_its_status_and_outcome():
    actions = _section(render_markdown(_state()), "Actions")
    assert actions.count("| containment |") == 3
    for name in ("isolate_network", "detach_from_asg", "revoke_sessions"):
        assert name in actions
    assert "failed" in actions
    assert "AccessDenied \\| iam" in actions, "a pipe in an error must not break the table"


def test_compensation_is_listed_when_something_was_undone():
    markdown = render_markdown(_state())
    assert "undo_detach_from_asg" in _section(markdown, "Compensation")
    assert "## Compensation" not in render_markdown(_state(compensations=[]))


def test_decision_says_who_decided_how_and_what():
    decisions = _section(render_markdown(_state()), "Decisions")
    assert "`alice@example.com`" in decisions
    assert "approve" in decisions and "update" in decisions and "accepted" in decisions
    assert "confirmed C2 traffic" in decisions
    assert "eradication: terminate" in decisions


def test_refused_decision_and_missing_decision_are_said_plainly():
    refused = Decision(
        kind=DecisionKind.REJECT, by="bob", at=DECIDED_AT, stage="containment", accepted=False, refusal="too late"
    )
    assert "refused (too late)" in _section(render_markdown(_state(decisions=[refused])), "Decisions")
    assert "No analyst decision" in render_markdown(_state(decisions=[]))


def test_escalations_are_recorded_under_decisions():
    escalated = RECEIVED_AT + timedelta(hours=4)
    decisions = _section(render_markdown(_state(escalations=[escalated])), "Decisions")
    assert escalated.isoformat() in decisions and "escalated" in decisions


def test_evidence_lists_hashes_versions_and_retention():
    evidence = _section(render_markdown(_state()), "Evidence")
    assert f"`{MANIFEST_SHA}`" in evidence and f"`{REPORT_INPUT_SHA}`" in evidence
    assert "s3://evidence-bkt/incidents/x/manifest.json" in evidence
    assert "v-manifest-1" in evidence
    assert "2026-04-01" in evidence and "COMPLIANCE" in evidence
    assert "no lock" in evidence
    assert "snap-0001" in evidence and "vol-0001" in evidence
    assert "cmd-42" in evidence and "Success" in evidence


def test_metrics_section_shows_seconds_to_each_milestone():
    metrics = _section(render_markdown(_state()), "Metrics")
    assert "| detected_to_contained_s | 42.5 |" in metrics
    assert "| observed_to_detected_s | 390.0 |" in metrics
    assert "| detected_to_recovered_s | — |" in metrics


def test_analysis_shows_plan_reasons():
    assert "Auto Scaling group shop-web" in _section(render_markdown(_state()), "Analysis")


def test_report_document_round_trips_through_json():
    document = report_document(_state())
    assert json.loads(json.dumps(document)) == document


def test_report_document_metrics_come_from_received_and_contained_times():
    document = json.loads(json.dumps(report_document(_state())))
    assert document["metrics"]["detected_to_contained_s"] == (CONTAINED_AT - RECEIVED_AT).total_seconds() == 42.5
    assert document["metrics"]["detected_to_decided_s"] == 1200.0
    assert document["metrics"]["detected_to_recovered_s"] is None


@pytest.mark.parametrize("contained_after_s", [0.25, 3.0, 7200.0])
def test_detected_to_contained_follows_the_record(contained_after_s):
    state = _state(contained_at=RECEIVED_AT + timedelta(seconds=contained_after_s))
    assert report_document(state)["metrics"]["detected_to_contained_s"] == contained_after_s


def test_report_document_carries_the_whole_record():
    document = json.loads(json.dumps(report_document(_state())))
    assert document["status"] == "resolved" and document["eradication"] == "terminate"
    assert [a["name"] for a in document["actions"]] == ["isolate_network", "detach_from_asg", "revoke_sessions"]
    assert document["compensations"][0]["status"] == "undone"
    assert document["decisions"][0]["by"] == "alice@example.com"
    assert {e["sha256"] for e in document["evidence"]} == {MANIFEST_SHA, REPORT_INPUT_SHA}
    assert document["snapshots"][0]["snapshot_id"] == "snap-0001"
    assert document["finding"]["resource"]["instance_id"] == INSTANCE_ID
    assert document["prior_state"]["tags"] == {"Name": "web-1"}


def test_an_open_incident_reports_without_milestones():
    state = _state(status=Status.ACTIVE, contained_at=None, decided_at=None, decisions=[], eradication=None)
    document = json.loads(json.dumps(report_document(state)))
    assert document["metrics"]["detected_to_contained_s"] is None
    assert "| detected_to_contained_s | — |" in render_markdown(state)


def test_a_decision_refused_before_any_question_does_not_print_none():
    """The workflow records stage=None when a decision arrives while nothing is pending."""
    early = Decision(
        kind=DecisionKind.REJECT, by="bob", at=RECEIVED_AT, accepted=False, refusal="no decision is pending"
    )
    decisions = _section(render_markdown(_state(decisions=[early])), "Decisions")
    assert "`bob`" in decisions and "refused (no decision is pending)" in decisions
    assert "None" not in decisions, decisions
