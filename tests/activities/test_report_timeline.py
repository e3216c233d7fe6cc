"""The report's timeline picture, read as a browser's parser would read it (xml.etree on the SVG): one bar per
phase the incident went through, on a time axis with labelled ticks; a mark per decision and per escalation with
its tooltip; every hostile text escaped; nothing run, nothing fetched."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from activities.report_html import Markup
from activities.report_timeline import MIN_BAR, PHASE_LABELS, SVG_NS, TimeAxis, phase_spans, svg_root, tag, timeline_svg
from activities.report_wording import decision_text
from irflow.models.incident import Decision, DecisionKind, Phase, TimelineEntry
from tests.activities.report_support import RECEIVED_AT, _state, drift

NS = {"svg": SVG_NS}
T0 = RECEIVED_AT
LIFECYCLE = [  # (seconds after T0, phase, event): every phase, several entries in some, the last two at once
    (0, Phase.DETECTION, "incident opened"),
    (1, Phase.DETECTION, "phase: detection_analysis"),
    (6, Phase.CONTAINMENT, "phase: containment"),
    (9, Phase.CONTAINMENT, "isolate_network: done"),
    (40, Phase.EVIDENCE, "phase: evidence — containment complete; collecting evidence"),
    (95, Phase.DECISION, "phase: analyst_decision — decision needed: approve?"),
    (1295, Phase.ERADICATION, "phase: eradication_recovery"),
    (1310, Phase.REPORT, "phase: post_incident — incident resolved"),
    (1312, Phase.DONE, "phase: done — incident resolved"),
    (1312, Phase.DONE, "notifications sent"),
]


def _timeline(rows=LIFECYCLE) -> list[TimelineEntry]:
    return [TimelineEntry(at=T0 + timedelta(seconds=s), phase=p, event=e) for s, p, e in rows]


def _decision(kind: DecisionKind, seconds: float, **extra) -> Decision:
    return Decision(kind=kind, by="alice", at=T0 + timedelta(seconds=seconds), stage="eradication", **extra)


def _svg(state) -> ET.Element:
    markup = timeline_svg(state)
    assert markup.startswith("<svg") and markup.endswith("</svg>")
    return ET.fromstring(markup)


def _bars(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{{{SVG_NS}}}rect") if r.get("class") == "phase"]


def _marks(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in svg.iter() if kind in (e.get("class") or "").split() and "mark" in e.get("class").split()]


def _title(element: ET.Element) -> str:
    return element.find("svg:title", NS).text


def test_one_bar_per_phase_the_incident_went_through_in_order_on_the_time_axis():
    svg = _svg(_state(timeline=_timeline(), decisions=[], escalations=[]))
    bars = _bars(svg)
    assert [b.get("data-phase") for b in bars] == [p.value for p in Phase], "every phase once, in order"
    x = [float(b.get("x")) for b in bars]
    widths = [float(b.get("width")) for b in bars]
    assert x == sorted(x) and all(w > 0 for w in widths)
    # Each bar ends where the next begins (the phase lasted until the next was entered).
    for (left, width), right in zip(zip(x[:-1], widths[:-1], strict=True), x[1:], strict=True):
        assert abs(left + width - right) < 0.11 or width == MIN_BAR
    # The done phase took no time: it still shows, MIN_BAR wide; evidence (55s) is wider than containment (34s).
    assert widths[-1] == MIN_BAR
    assert widths[2] > widths[1] > widths[0]
    assert widths[3] == max(widths), "the 20 minutes waiting for a decision are the longest bar"
    assert _title(bars[3]).startswith(f"{PHASE_LABELS[Phase.DECISION]}: {T0 + timedelta(seconds=95):%Y-%m-%dT%H:%M}")
    assert "20m 0s" in _title(bars[3])
    lanes = [t.text for t in svg.iter(f"{{{SVG_NS}}}text") if t.get("class") == "lane"]
    assert lanes[1] == "containment · 34s" and lanes[3] == "analyst decision · 20m 0s"


def test_a_phase_entered_twice_has_two_bars_on_its_lane():
    rows = [
        (0, Phase.DETECTION, "opened"),
        (5, Phase.DECISION, "decision needed: contain?"),
        (65, Phase.CONTAINMENT, "phase: containment"),
        (70, Phase.EVIDENCE, "phase: evidence"),
        (80, Phase.DECISION, "decision needed: eradicate?"),
        (200, Phase.REPORT, "phase: post_incident"),
    ]
    state = _state(timeline=_timeline(rows), decisions=[])
    bars = _bars(_svg(state))
    assert [b.get("data-phase") for b in bars] == [
        Phase.DETECTION,
        Phase.CONTAINMENT,
        Phase.EVIDENCE,
        Phase.DECISION,
        Phase.DECISION,
        Phase.REPORT,
    ]
    decision_bars = [b for b in bars if b.get("data-phase") == Phase.DECISION]
    assert decision_bars[0].get("y") == decision_bars[1].get("y"), "one lane per phase"
    assert len({b.get("y") for b in bars}) == 5
    assert [s.seconds for s in phase_spans(state) if s.phase == Phase.DECISION] == [60.0, 120.0]


def test_ticks_are_labelled_times_spanning_the_incident():
    svg = _svg(_state(timeline=_timeline(), decisions=[]))
    ticks = [t for t in svg.iter(f"{{{SVG_NS}}}text") if t.get("class") == "tick"]
    assert len(ticks) >= 3
    assert [t.text for t in ticks][:2] == ["09:00", "09:05"], "a 22-minute incident is ticked every 5 minutes"
    positions = [float(t.get("x")) for t in ticks]
    bars = _bars(svg)
    assert positions == sorted(positions)
    assert positions[0] <= float(bars[0].get("x")) and float(bars[-1].get("x")) <= positions[-1]
    assert len(list(svg.iter(f"{{{SVG_NS}}}line"))) == len(ticks)


def test_time_axis_steps_and_labels():
    start = datetime(2026, 3, 1, 9, 0, 30, tzinfo=UTC)
    short = TimeAxis(start, start, 0, 100)  # no time at all: one step, both ends labelled
    assert short.step == 1 and [label for _, label in short.ticks()] == ["09:00:30", "09:00:31"]
    assert short.x(start) == 0
    minutes = TimeAxis(start, start + timedelta(minutes=3), 0, 100)
    assert minutes.step == 30 and minutes.ticks()[0] == (0.0, "09:00:30") and minutes.ticks()[-1][0] == 100.0
    overnight = TimeAxis(start, start + timedelta(hours=20), 0, 100)
    assert (
        overnight.step == 10800
        and overnight.ticks()[0][1] == "03-01 09:00"
        and overnight.ticks()[-1][1] == ("03-02 06:00")
    )
    month = TimeAxis(start, start + timedelta(days=30), 0, 100)
    assert month.step == 7 * 86400 and all(len(label) == 10 for _, label in month.ticks())
    assert len(month.ticks()) <= 10
    assert month.x(start + timedelta(days=15)) > month.x(start + timedelta(days=14))


def test_a_mark_per_decision_and_per_escalation_with_a_tooltip():
    escalated = T0 + timedelta(hours=4)
    drift_at = T0 + timedelta(seconds=600)
    undone = drift(drift_at, "bob")
    again = drift(drift_at + timedelta(seconds=300), "bob", escalated=False)
    decisions = [
        _decision(DecisionKind.NOTE, 120, comment="looking"),
        _decision(DecisionKind.APPROVE, 200, accepted=False, refusal="nobody approves their own incident"),
        _decision(DecisionKind.APPROVE, 1295, comment="confirmed"),
    ]
    state = _state(timeline=_timeline(), decisions=decisions, escalations=[drift_at, escalated], drifts=[undone, again])
    svg = _svg(state)
    marks = _marks(svg, "decision")
    assert [m.get("data-kind") for m in marks] == ["note", "approve", "approve"]
    assert "refused: nobody approves their own incident" in _title(marks[1])
    assert marks[1].get("fill") == "#ffffff", "a refused decision is drawn hollow"
    assert _title(marks[2]).startswith("approve (eradication) by alice via signal") and "confirmed" in _title(marks[2])
    assert [_title(m) for m in marks] == [decision_text(d) for d in decisions], "the report's one wording"
    escalations = _marks(svg, "escalation")
    assert len(escalations) == 2
    assert "isolate_network" in _title(escalations[0]) and "changed by bob" in _title(escalations[0])
    assert "no decision before the deadline" in _title(escalations[1])
    (drift_mark,) = _marks(svg, "drift")
    assert "not escalated again" in _title(drift_mark)
    # Marks sit at their moment: the deadline escalation, 4 hours in, is the rightmost thing drawn.
    bars = _bars(svg)
    assert float(marks[2].get("cx")) == float(bars[4].get("x")), "the approval is when eradication began"
    assert max(float(b.get("x")) for b in bars) < float(escalations[1].get("d").split()[0][1:])
    assert all(float(b.get("x")) + float(b.get("width")) <= 960 for b in bars)


def test_hostile_text_is_escaped_and_reads_back_as_written():
    hostile = '</title></svg><script>alert(1)</script><image href="https://evil.example/x.png"/>'
    state = _state(
        timeline=_timeline([(0, Phase.DETECTION, hostile), (5, Phase.CONTAINMENT, "phase: containment")]),
        decisions=[_decision(DecisionKind.REJECT, 3, comment=hostile)],
        drifts=[drift(T0 + timedelta(seconds=4), '"><script>y</script>', found=hostile, trigger="finding")],
        escalations=[T0 + timedelta(seconds=4)],
        incident_id="ec2-<script>-20260301T090030Z",
    )
    markup = timeline_svg(state)
    assert "<script" not in markup and "<image" not in markup
    svg = ET.fromstring(markup)  # well-formed: the hostile text closed nothing
    drawn = {e.tag.removeprefix(f"{{{SVG_NS}}}") for e in svg.iter()}
    assert drawn == {"svg", "title", "desc", "rect", "text", "line", "circle", "path"}
    assert _title(_bars(svg)[0]).endswith(hostile)
    assert _title(_marks(svg, "decision")[0]).endswith(hostile)
    assert '"><script>y</script>' in _title(_marks(svg, "escalation")[0])
    assert svg.find("svg:title", NS).text == "Timeline of incident ec2-<script>-20260301T090030Z"


def test_nothing_runs_and_nothing_is_fetched_and_it_says_what_it_shows():
    svg = _svg(_state(timeline=_timeline(), escalations=[T0 + timedelta(seconds=100)]))
    for element in svg.iter():
        assert element.tag.split("}")[1] not in ("script", "foreignObject", "image", "use", "a", "style")
        for name, value in element.attrib.items():
            assert not name.endswith("href") and name != "src" and not name.startswith("on"), name
            assert "url(" not in value and "javascript:" not in value
    assert svg.get("role") == "img"
    title_id, desc_id = svg.get("aria-labelledby").split()
    assert svg.find("svg:title", NS).get("id") == title_id
    desc = svg.find("svg:desc", NS)
    assert desc.get("id") == desc_id
    assert "analyst decision 20m 0s" in desc.text and "1 decision(s), 1 escalation(s)" in desc.text
    assert svg.get("viewBox") == f"0 0 {svg.get('width')} {svg.get('height')}"
    assert 600 <= int(svg.get("width")) <= 1200 and 100 <= int(svg.get("height")) <= 600


def test_every_picture_has_one_accessible_root_named_by_its_title_and_desc():
    hostile = '<b>"x"</b>'
    root = ET.fromstring(svg_root("chart-a", f"title {hostile}", "what it shows", [tag("line")], width=300, height=90,
                                  class_="chart"))  # fmt: skip
    assert (root.get("id"), root.get("class"), root.get("role")) == ("chart-a", "chart", "img")
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("300", "90", "0 0 300 90")
    assert root.get("aria-labelledby") == "chart-a-title chart-a-desc"
    assert [(e.tag.split("}")[1], e.get("id"), e.text) for e in root][:2] == [
        ("title", "chart-a-title", f"title {hostile}"),
        ("desc", "chart-a-desc", "what it shows"),
    ]
    assert isinstance(svg_root("x", "t", "d", [], width=1, height=1, class_="c"), Markup)
    # The timeline is one of them: its root says what it is, with the page's ids.
    timeline = _svg(_state(timeline=_timeline(), decisions=[]))
    assert (timeline.get("id"), timeline.get("class")) == ("timeline-svg", "timeline")
    assert timeline.get("aria-labelledby") == "timeline-svg-title timeline-svg-desc"


def test_no_timeline_no_picture_but_a_sentence():
    assert timeline_svg(_state(timeline=[])) == '<p class="muted">No phase was recorded: nothing to draw.</p>'
