"""The post-incident report, rendered from an incident record built by hand (no AWS, no Temporal)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from activities.report import SECTIONS, render_html, render_markdown, report_document
from irflow.devstack.demo import sample_finding
from irflow.models.ec2 import InstanceContext
from irflow.models.finding import parse_guardduty
from irflow.models.incident import (
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


# --- metrics from the first observation ---


def _finding_seen(first_seen: datetime | None, finding_id: str):
    base = _state().finding
    return base.model_copy(update={"id": finding_id, "first_seen": first_seen})


def test_first_observation_is_the_earliest_sighting_over_every_finding_absorbed():
    later = _finding_seen(FINDING_AT - timedelta(minutes=2), "later")
    earlier = _finding_seen(FINDING_AT - timedelta(hours=1), "earlier")
    state = _state(finding=later, findings_absorbed=[later, earlier])
    assert state.milestones()["first_observed"] == FINDING_AT - timedelta(hours=1)
    assert state.metrics()["observed_to_detected_s"] == 3630.0
    assert report_document(state)["milestones"]["first_observed"] == (FINDING_AT - timedelta(hours=1)).isoformat()


def test_first_observation_falls_back_to_the_findings_creation_time():
    unseen = _finding_seen(None, "no-first-seen")
    state = _state(finding=unseen, findings_absorbed=[unseen])
    assert state.milestones()["first_observed"] == unseen.created_at
    assert state.metrics()["observed_to_detected_s"] == (RECEIVED_AT - unseen.created_at).total_seconds()


def test_metrics_tell_the_first_decision_from_the_final_one_and_ignore_refusals_and_notes():
    approval_at = RECEIVED_AT + timedelta(seconds=10)
    decisions = [
        Decision(
            kind=DecisionKind.APPROVE,
            by="eve",
            at=RECEIVED_AT + timedelta(seconds=1),
            accepted=False,
            refusal="no decision is pending",
        ),
        Decision(kind=DecisionKind.NOTE, by="carol", at=RECEIVED_AT + timedelta(seconds=2), comment="looking"),
        Decision(kind=DecisionKind.APPROVE, by="dave", at=approval_at, stage="containment"),
        Decision(kind=DecisionKind.APPROVE, by="alice", at=DECIDED_AT, stage="eradication"),
    ]
    recovered = DECIDED_AT + timedelta(seconds=30)
    closed = recovered + timedelta(seconds=5)
    state = _state(decisions=decisions, recovered_at=recovered, closed_at=closed)
    milestones = state.milestones()
    assert milestones["first_decision"] == approval_at and milestones["decided"] == DECIDED_AT
    metrics = state.metrics()
    assert metrics["detected_to_first_decision_s"] == 10.0
    assert metrics["detected_to_decided_s"] == 1200.0
    assert metrics["observed_to_first_decision_s"] == 400.0
    assert metrics["observed_to_decided_s"] == 1590.0
    assert metrics["observed_to_recovered_s"] == 1620.0
    assert metrics["observed_to_closed_s"] == 1625.0
    assert metrics["contained_to_decided_s"] == 1157.5
    assert metrics["decided_to_recovered_s"] == 30.0
    assert metrics["detected_to_closed_s"] == 1235.0


def test_metrics_keep_the_keys_existing_callers_read():
    metrics = _state(recovered_at=DECIDED_AT + timedelta(seconds=30)).metrics()
    assert {
        "observed_to_detected_s",
        "detected_to_contained_s",
        "observed_to_contained_s",
        "detected_to_decided_s",
        "detected_to_recovered_s",
    } <= set(metrics)
    assert metrics["detected_to_recovered_s"] == 1230.0


def test_metrics_are_a_function_of_the_record_alone():
    state = _state()
    again = IncidentState.model_validate_json(state.model_dump_json())
    assert state.metrics() == again.metrics() and state.milestones() == again.milestones()


# --- every rendering lists every action, in order ---


ACTION_NAMES = ["isolate_network", "detach_from_asg", "revoke_sessions"]


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


# --- the HTML page ---


class _Sections(HTMLParser):
    """Text of each table row, per <section id=...>; and every tag and attribute seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict]] = []
        self.section = None
        self.row = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self.section = attrs["id"]
            self.rows[self.section] = []
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.section:
            self.rows[self.section].append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def _parsed(state: IncidentState) -> _Sections:
    parser = _Sections()
    parser.feed(render_html(state))
    parser.close()
    return parser


def test_html_is_one_self_contained_page():
    page = render_html(_state())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    tags = _parsed(_state()).tags
    assert {t for t, _ in tags}.isdisjoint({"script", "link", "img", "iframe", "object", "embed", "form", "base"})
    assert [a["href"] for t, a in tags if "href" in a] == [f"#{ident}" for ident, _ in SECTIONS]
    assert not any(name == "src" or name.startswith("on") for _, a in tags for name in a)
    assert "url(" not in page and "@import" not in page and "//" not in page.split("<body>")[0].split("<style>")[1]
    csp = next(a["content"] for t, a in tags if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_html_has_every_section():
    rows = _parsed(_state()).rows
    assert list(rows) == [ident for ident, _ in SECTIONS]


def test_html_escapes_attacker_and_analyst_text():
    finding = _state().finding.model_copy(
        update={"title": 'C2 <script>alert("title")</script> "><img src=x onerror=alert(1)>'}
    )
    decision = Decision(
        kind=DecisionKind.REJECT,
        by="<b>mallory</b>",
        at=DECIDED_AT,
        comment="fine <script>alert('comment')</script>",
        stage="eradication",
    )
    state = _state(
        finding=finding,
        findings_absorbed=[finding],
        decisions=[decision],
        timeline=[TimelineEntry(at=RECEIVED_AT, phase=Phase.DETECTION, event="<script>timeline</script>")],
        failure_reason="</section><script>x</script>",
    )
    page = render_html(state)
    assert "<script" not in page.lower() and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;" in page
    assert "fine &lt;script&gt;alert(&#x27;comment&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;mallory&lt;/b&gt;" in page
    parsed = _parsed(state)
    assert {t for t, _ in parsed.tags}.isdisjoint({"script", "img", "b"})
    assert list(parsed.rows) == [ident for ident, _ in SECTIONS], "escaped text cannot close a section early"
    decisions = parsed.rows["decisions"]
    assert decisions[1][3] == "<b>mallory</b>" and decisions[1][7] == "fine <script>alert('comment')</script>"


def test_html_lists_every_action_in_order_with_times_and_outcome():
    state = _state()
    rows = _parsed(state).rows["actions"][1:]
    assert [r[1] for r in rows] == ACTION_NAMES and [r[0] for r in rows] == ["1", "2", "3"]
    for row, action in zip(rows, state.actions, strict=True):
        assert row[2:6] == [action.phase, action.status, action.started_at.isoformat(), action.finished_at.isoformat()]
    assert rows[0][6] == '{"enis": 2}' and rows[2][6] == "AccessDenied | iam"
    assert [r[1] for r in _parsed(state).rows["compensations"][1:]] == ["undo_detach_from_asg"]


def test_html_metrics_evidence_decisions_and_escalations():
    escalated = RECEIVED_AT + timedelta(hours=4)
    parsed = _parsed(_state(escalations=[escalated]))
    metrics = {r[0]: r[1:] for r in parsed.rows["metrics"]}
    assert metrics["detected_to_contained_s"] == ["42.5", "42.5s"]
    assert metrics["observed_to_detected_s"] == ["390.0", "6m 30s"]
    assert metrics["detected_to_recovered_s"] == ["—", "—"]
    milestones = {r[0]: r[1] for r in parsed.rows["metrics"] if len(r) == 2}
    assert milestones["contained"] == CONTAINED_AT.isoformat()
    evidence = parsed.rows["evidence"]
    assert evidence[0] == ["kind", "object", "SHA-256", "size (bytes)", "version id", "retained until", "lock mode"]
    assert evidence[1] == [
        "manifest",
        "s3://evidence-bkt/incidents/x/manifest.json",
        MANIFEST_SHA,
        "2048",
        "v-manifest-1",
        "2026-04-01T00:00:00+00:00",
        "COMPLIANCE",
    ]
    assert evidence[2][2] == REPORT_INPUT_SHA and evidence[2][6] == "no lock"
    decision = parsed.rows["decisions"][1]
    assert decision == [
        DECIDED_AT.isoformat(),
        "approve",
        "eradication",
        "alice@example.com",
        "update",
        "accepted",
        "terminate",
        "confirmed C2 traffic",
    ]
    assert parsed.rows["escalations"][1][0] == escalated.isoformat()
    assert parsed.rows["snapshots"][1][:3] == ["snap-0001", "vol-0001", "completed"]
    assert "Auto Scaling group shop-web" in render_html(_state())


def test_html_says_plainly_what_did_not_happen():
    page = render_html(_state(compensations=[], decisions=[], snapshots=[], memory_capture=None))
    for sentence in (
        "Nothing was undone.",
        "No analyst decision was recorded.",
        "No escalation",
        "No snapshot was taken.",
        "No memory capture was attempted.",
    ):
        assert sentence in page


def test_the_three_renderings_list_the_same_actions_in_the_same_order():
    state = _state()
    from_json = [a["name"] for a in report_document(state)["actions"]]
    from_html = [r[1] for r in _parsed(state).rows["actions"][1:]]
    markdown_rows = [
        line for line in _section(render_markdown(state), "Actions").splitlines() if line[:3].strip("| ").isdigit()
    ]
    from_markdown = [row.split(" | ")[1] for row in markdown_rows]
    assert from_json == from_html == from_markdown == [a.name for a in state.actions] == ACTION_NAMES
