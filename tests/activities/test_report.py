"""The post-incident report, rendered from an incident record built by hand (no AWS, no Temporal): the
JSON document and the Markdown; and `write_report`, which stores them with the HTML page, locked."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from activities.report import render_markdown, report_document, write_report
from irflow.models.incident import Decision, DecisionKind, Status
from tests.activities.evidence_support import (
    INCIDENT_ID,
    assert_locked_evidence,
    incident_state_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    raw_finding_fixture,  # noqa: F401
    s3,
    step_fixture,  # noqa: F401
    stored_bytes,
    target_fixture,  # noqa: F401
)
from tests.activities.report_support import (
    ACTION_NAMES,
    CHILDREN,
    CONTAINED_AT,
    DECIDED_AT,
    FINDING_AT,
    INSTANCE_ID,
    MANIFEST_SHA,
    RECEIVED_AT,
    REPORT_INPUT_SHA,
    _section,
    _state,
)


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


# --- an attack sequence's report rolls up its children ---


def test_the_markdown_lists_each_child_with_its_status_time_to_contain_and_decisions():
    section = _section(render_markdown(_state(children=CHILDREN)), "Incidents of the resources the sequence names")
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| incident | resource | playbook | status | time to contain | decisions |"
    instance, key = rows[1:]
    assert instance == (
        f"| {CHILDREN[0].incident_id} | Instance `{INSTANCE_ID}` | ec2-instance | awaiting_decision | 42.5s | — |"
    )
    assert key.startswith(f"| {CHILDREN[1].incident_id} (joined) | AccessKey `alice.martin` | iam-user-credentials |")
    assert "| rolled_back | 6m 30s | reject (eradication) by bob: our \\| own \\<b>deploy\\</b> key |" in key
    unread = CHILDREN[0].model_copy(update={"status": None, "time_to_contain_seconds": None})
    assert "| unknown | — | — |" in render_markdown(_state(children=[unread]))


def test_a_report_without_children_has_no_children_section():
    assert "Incidents of the resources" not in render_markdown(_state())
    assert report_document(_state())["children"] == []


def test_the_json_document_carries_the_children():
    document = json.loads(json.dumps(report_document(_state(children=CHILDREN))))
    assert [(c["playbook"], c["status"], c["time_to_contain_seconds"]) for c in document["children"]] == [
        ("ec2-instance", "awaiting_decision", 42.5),
        ("iam-user-credentials", "rolled_back", 390.0),
    ]
    assert document["children"][1]["decisions"] == CHILDREN[1].decisions and document["children"][1]["joined"]


# --- every rendering lists every action, in order (the HTML's in test_report_html.py) ---


def test_markdown_actions_are_numbered_in_order_with_start_and_finish():
    actions = _section(render_markdown(_state()), "Actions")
    rows = [line for line in actions.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1] for row in rows] == ACTION_NAMES
    assert [row.split(" | ")[0] for row in rows] == ["| 1", "| 2", "| 3"]
    first = _state().actions[0]
    assert f"| {first.started_at.isoformat()} | {first.finished_at.isoformat()} |" in rows[0]
    assert '{"enis": 2}' in rows[0]


def test_markdown_metrics_list_milestones_and_human_durations():
    metrics = _section(render_markdown(_state()), "Metrics")
    assert "| activity first observed (finding's first sighting) | 2026-03-01T08:54:00+00:00 |" in metrics
    assert "| observed_to_contained_s | 432.5 | 7m 12s |" in metrics
    assert "| detected_to_decided_s | 1200.0 | 20m 0s |" in metrics


def test_markdown_does_not_let_attacker_text_become_html():
    finding = _state().finding.model_copy(update={"title": "pwned <script>alert(1)</script>"})
    comment = Decision(kind=DecisionKind.APPROVE, by="alice", at=DECIDED_AT, comment="<img src=x onerror=alert(2)>")
    markdown = render_markdown(_state(finding=finding, decisions=[comment]))
    assert re.search(r"(?<!\\)<", markdown) is None, "every < is backslash-escaped"
    assert "\\<script>alert(1)\\</script>" in markdown and "\\<img src=x onerror=alert(2)>" in markdown


def test_json_carries_milestones_findings_and_action_times():
    document = json.loads(json.dumps(report_document(_state())))
    assert list(document["milestones"]) == [
        "first_observed",
        "detected",
        "contained",
        "first_decision",
        "decided",
        "recovered",
        "closed",
    ]
    assert document["milestones"]["contained"] == CONTAINED_AT.isoformat()
    assert document["findings"][0]["first_seen"] == (FINDING_AT - timedelta(minutes=6)).isoformat()
    first = document["actions"][0]
    assert first["started_at"] and first["finished_at"] and first["phase"] == "containment"
    assert document["decisions"][0]["stage"] == "eradication" and document["decisions"][0]["via"] == "update"


# --- stored beside the evidence ---


def test_report_is_stored_as_markdown_json_and_html_and_locked(workload, incident_state):
    records = write_report(incident_state)
    assert sorted(r.key for r in records) == [
        f"incidents/{INCIDENT_ID}/report/report.html",
        f"incidents/{INCIDENT_ID}/report/report.json",
        f"incidents/{INCIDENT_ID}/report/report.md",
    ]
    by_key = {r.key.rsplit("/", 1)[-1]: r for r in records}
    assert json.loads(stored_bytes(workload, by_key["report.json"]))["incident_id"] == INCIDENT_ID
    assert stored_bytes(workload, by_key["report.md"]).decode().startswith(f"# Incident {INCIDENT_ID}")
    assert stored_bytes(workload, by_key["report.html"]).decode().startswith("<!DOCTYPE html>")
    content_types = {
        name: s3(workload).head_object(Bucket=r.bucket, Key=r.key, VersionId=r.version_id)["ContentType"]
        for name, r in by_key.items()
    }
    assert content_types == {
        "report.md": "text/markdown",
        "report.json": "application/json",
        "report.html": "text/html; charset=utf-8",
    }
    for record in records:
        assert_locked_evidence(workload, record)
