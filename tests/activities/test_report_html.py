"""The post-incident report as one HTML page, rendered from an incident record built by hand: self-contained,
every section there, every attacker- and analyst-written value escaped, and the same actions as the JSON
and the Markdown."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser

from activities.report import render_markdown, report_document
from activities.report_html import SECTIONS, render_html
from activities.report_timeline import SVG_NS
from irflow.models.incident import Decision, DecisionKind, IncidentState, Phase, TimelineEntry
from tests.activities.report_support import (
    ACTION_NAMES,
    CHILDREN,
    CONTAINED_AT,
    DECIDED_AT,
    INSTANCE_ID,
    MANIFEST_SHA,
    RECEIVED_AT,
    REPORT_INPUT_SHA,
    _section,
    _state,
)


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


# --- every rendering lists every action, in order ---


def test_the_three_renderings_list_the_same_actions_in_the_same_order():
    state = _state()
    from_json = [a["name"] for a in report_document(state)["actions"]]
    from_html = [r[1] for r in _parsed(state).rows["actions"][1:]]
    markdown_rows = [
        line for line in _section(render_markdown(state), "Actions").splitlines() if line[:3].strip("| ").isdigit()
    ]
    from_markdown = [row.split(" | ")[1] for row in markdown_rows]
    assert from_json == from_html == from_markdown == [a.name for a in state.actions] == ACTION_NAMES


# --- the timeline picture and an attack sequence's children ---


def test_the_timeline_section_holds_the_svg_picture_before_its_table():
    state = _state()
    page = render_html(state)
    section = page.split('<section id="timeline">', 1)[1].split("</section>", 1)[0]
    assert section.index("<svg") < section.index("<table>")
    svg = ET.fromstring(section[section.index("<svg") : section.index("</svg>") + len("</svg>")])
    phases = [r.get("data-phase") for r in svg.iter(f"{{{SVG_NS}}}rect") if r.get("class") == "phase"]
    assert phases == [t.phase.value for t in state.timeline]  # three phases, one entry each
    tags = _parsed(state).tags
    assert sum(1 for t, _ in tags if t == "svg") == 1
    assert "svg.timeline" in page.split("<style>")[1].split("</style>")[0], "the page sizes the picture"


def test_an_attack_sequence_lists_its_child_incidents_after_its_findings():
    state = _state(children=CHILDREN)
    parsed = _parsed(state)
    assert list(parsed.rows)[:3] == ["summary", "findings", "children"]
    assert [a["href"] for t, a in parsed.tags if "href" in a][2] == "#children"
    header, first, second = parsed.rows["children"]
    assert header == ["incident", "resource", "playbook", "opened or joined", "status", "time to contain", "decisions"]
    assert first == [
        CHILDREN[0].incident_id,
        f"Instance {INSTANCE_ID}",
        "ec2-instance",
        "opened",
        "awaiting_decision",
        "42.5s",
        "—",
    ]
    assert second == [
        CHILDREN[1].incident_id,
        "AccessKey alice.martin",
        "iam-user-credentials",
        "joined (was running)",
        "rolled_back",
        "6m 30s",
        "reject (eradication) by bob: our | own <b>deploy</b> key",
    ]
    page = render_html(state)
    assert "<h2>Incidents of the resources the sequence names</h2>" in page
    assert "<b>deploy</b>" not in page and "&lt;b&gt;deploy&lt;/b&gt;" in page


def test_no_children_no_children_section():
    page = render_html(_state())
    assert 'id="children"' not in page and "#children" not in page
