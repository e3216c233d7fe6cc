"""`irflow stats`' arithmetic, on figures worked out by hand: the outcome, the time to contain (the
report's own figure), the time to decide per question, medians and nearest-rank p90s, the counts, and the page
that draws them (self-contained, escaped)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from activities.report import report_document
from activities.report_timeline import SVG_NS
from irflow.models.incident import Decision, DecisionKind, Phase, TimelineEntry
from irflow.stats import (
    CONTAIN_TITLE,
    FIGURES,
    IncidentFacts,
    compute,
    figure,
    nearest_rank,
    outcome_of,
    render_stats_html,
    times_to_decide,
)
from tests.activities.report_support import CONTAINED_AT, RECEIVED_AT, _state

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_outcome_is_irflows_final_status_or_how_the_workflow_ended():
    assert outcome_of("awaiting_decision", "RUNNING") == "open"
    assert outcome_of("resolved", "COMPLETED") == "resolved"
    assert outcome_of("rolled_back", "FAILED") == "rolled_back"  # containment failed: the workflow fails
    assert outcome_of("failed", "CANCELED") == "failed"  # a cancel still writes its verdict
    assert outcome_of("awaiting_decision", "TERMINATED") == "terminated"
    assert outcome_of(None, None) == "unknown"


def test_median_and_nearest_rank_p90_against_hand_worked_values():
    # 5 values: sorted 3 7 12 25 40; the middle one is 12; p90's rank is ceil(4.5) = 5: 40.
    assert figure([12, 3, 7, 40, 25]).model_dump() == {"count": 5, "median_s": 12, "p90_s": 40}
    # 10 values 1..10: median (5 + 6) / 2; p90's rank is ceil(9) = 9: the 9th value.
    assert figure([float(v) for v in range(10, 0, -1)]).model_dump() == {"count": 10, "median_s": 5.5, "p90_s": 9}
    # 2 values: median their mean, p90's rank ceil(1.8) = 2.
    assert figure([5, 1]).model_dump() == {"count": 2, "median_s": 3, "p90_s": 5}
    # 20 values: p90's rank is 18, the value just under the two largest.
    assert nearest_rank(range(1, 21), 90) == 18
    assert figure([4.25]).model_dump() == {"count": 1, "median_s": 4.25, "p90_s": 4.25}
    assert figure([]).model_dump() == {"count": 0, "median_s": None, "p90_s": None}


def _decision(kind: DecisionKind, seconds: float, **extra) -> Decision:
    return Decision(kind=kind, **{"at": _at(seconds), "by": "alice", **extra})


def test_time_to_decide_runs_from_each_question_to_the_decision_that_settled_it():
    timeline = [
        TimelineEntry(at=_at(0), phase=Phase.DETECTION, event="opened"),
        TimelineEntry(at=_at(2), phase=Phase.DECISION, event="phase: analyst_decision — decision needed: contain?"),
        TimelineEntry(at=_at(30), phase=Phase.DECISION, event="reminder"),
        TimelineEntry(at=_at(62), phase=Phase.CONTAINMENT, event="phase: containment"),
        TimelineEntry(at=_at(70), phase=Phase.EVIDENCE, event="phase: evidence"),
        TimelineEntry(at=_at(100), phase=Phase.DECISION, event="phase: analyst_decision — decision needed: eradicate?"),
        TimelineEntry(at=_at(400), phase=Phase.ERADICATION, event="phase: eradication_recovery"),
        TimelineEntry(at=_at(410), phase=Phase.REPORT, event="phase: post_incident"),
    ]
    decisions = [
        _decision(DecisionKind.NOTE, 10, comment="looking"),  # a note decides nothing
        _decision(DecisionKind.APPROVE, 20, accepted=False, refusal="not an approver"),  # refused
        _decision(DecisionKind.APPROVE, 62, stage="containment"),  # settles the first question: 60s
        _decision(DecisionKind.APPROVE, 250, stage="eradication"),  # first of two approvals
        _decision(DecisionKind.APPROVE, 400, stage="eradication"),  # the second settles it: 300s
    ]
    assert times_to_decide(timeline, decisions) == [60.0, 300.0]
    # Nobody answered the second question (the timeout's default contained at the first): neither counts.
    timed_out = [_decision(DecisionKind.APPROVE, 62, via="timeout", by="irflow")]
    assert times_to_decide(timeline, timed_out) == []
    # A question still open at the end of the record counts once it is answered.
    waiting = timeline[:6]
    assert times_to_decide(waiting, decisions[:3]) == [60.0]
    assert times_to_decide(waiting, [*decisions[:3], _decision(DecisionKind.REJECT, 190)]) == [60.0, 90.0]


def test_time_to_decide_measures_people_the_timeouts_default_is_the_reports_decision_but_nobody_answering():
    asked, defaulted = RECEIVED_AT + timedelta(minutes=1), RECEIVED_AT + timedelta(minutes=31)
    answered = defaulted + timedelta(minutes=9)  # the eradication question was asked a minute after the default
    timeline = [
        TimelineEntry(at=RECEIVED_AT, phase=Phase.DETECTION, event="finding received"),
        TimelineEntry(at=asked, phase=Phase.DECISION, event="decision needed: contain?"),
        TimelineEntry(at=defaulted, phase=Phase.CONTAINMENT, event="containment applied by the timeout default"),
        TimelineEntry(at=defaulted + timedelta(minutes=1), phase=Phase.DECISION, event="decision needed: eradicate?"),
        TimelineEntry(at=answered, phase=Phase.ERADICATION, event="stopping"),
    ]
    default = _decision(DecisionKind.APPROVE, 0, at=defaulted, via="timeout", by="irflow", stage="containment")
    person = _decision(DecisionKind.APPROVE, 0, at=answered, via="update", stage="eradication")
    state = _state(timeline=timeline, decisions=[default, person], decided_at=answered)
    assert state.milestones()["first_decision"] == defaulted, "the report: the decision the workflow acted on"
    assert default.settles, "it settled the question, as far as the workflow goes"
    # stats: the first question nobody answered is left out; the second took the analyst 8 minutes.
    assert times_to_decide(timeline, state.decisions) == [8 * 60.0]
    read = IncidentFacts(workflow_id="w", incident_id=state.incident_id, outcome="resolved").with_report(
        report_document(state), "s3://b/k"
    )
    assert read.times_to_decide_s == [8 * 60.0]


def test_a_stored_report_gives_the_playbook_and_the_reports_own_figures():
    state = _state(
        timeline=[
            TimelineEntry(at=RECEIVED_AT, phase=Phase.DETECTION, event="finding received"),
            TimelineEntry(at=CONTAINED_AT, phase=Phase.CONTAINMENT, event="instance isolated"),
            TimelineEntry(at=RECEIVED_AT + timedelta(minutes=5), phase=Phase.DECISION, event="decision needed"),
            TimelineEntry(at=RECEIVED_AT + timedelta(minutes=21), phase=Phase.ERADICATION, event="stopping"),
        ]
    )
    document = report_document(state)
    facts = IncidentFacts(workflow_id="w", incident_id=state.incident_id, outcome="resolved")
    read = facts.with_report(document, "s3://bkt/incidents/x/report/report.json")
    assert read.playbook == "ec2-instance" and read.report == "s3://bkt/incidents/x/report/report.json"
    assert read.time_to_contain_s == document["metrics"]["detected_to_contained_s"] == 42.5
    assert read.times_to_decide_s == [15 * 60.0], "asked at 5 minutes, approved at 20 (report_support's DECIDED_AT)"
    never_contained = report_document(_state(contained_at=None, decisions=[], timeline=[]))
    assert facts.with_report(never_contained, "s3://b/k").model_dump(
        include={"time_to_contain_s", "times_to_decide_s"}
    ) == {
        "time_to_contain_s": None,
        "times_to_decide_s": [],
    }


def _facts(name: str, outcome: str, closed: float | None, **extra) -> IncidentFacts:
    return IncidentFacts(
        workflow_id=f"ec2-{name}",
        incident_id=f"ec2-{name}-20260301T090000Z",
        outcome=outcome,
        started_at=_at(0),
        closed_at=_at(closed) if closed is not None else None,
        **extra,
    )


FACTS = [
    _facts("a", "resolved", 3600, finding_type="Backdoor:EC2/C&CActivity.B!DNS", playbook="ec2-instance",
           report="s3://b/a", time_to_contain_s=12.0, times_to_decide_s=[300.0]),
    _facts("b", "rolled_back", 90000, finding_type="Backdoor:EC2/C&CActivity.B!DNS", playbook="ec2-instance",
           report="s3://b/b", time_to_contain_s=4.0, times_to_decide_s=[60.0, 1200.0]),
    _facts("c", "resolved", 95000, finding_type="UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
           playbook="iam-user", report="s3://b/c", time_to_contain_s=30.0, times_to_decide_s=[45.0]),
    _facts("d", "failed", 96000, finding_type="Policy:S3/BucketAnonymousAccessGranted", playbook="s3-bucket",
           report="s3://b/d", time_to_contain_s=None, times_to_decide_s=[]),
    _facts("e", "open", None, finding_type="UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
           no_report="still open: its report is written when it ends"),
]  # fmt: skip


def test_counts_by_type_playbook_and_outcome_and_the_times_of_the_reported_incidents_only():
    stats = compute(FACTS, "30d", T0 - timedelta(days=1), T0 + timedelta(days=2))
    assert (stats.incidents, stats.finished, stats.open, stats.with_report) == (5, 4, 1, 4)
    assert stats.by_finding_type == {
        "Backdoor:EC2/C&CActivity.B!DNS": 2,
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom": 2,
        "Policy:S3/BucketAnonymousAccessGranted": 1,
    }
    assert stats.by_playbook == {"ec2-instance": 2, "(no report)": 1, "iam-user": 1, "s3-bucket": 1}
    assert stats.by_outcome == {"resolved": 2, "failed": 1, "open": 1, "rolled_back": 1}
    # contain: 4, 12, 30 (d was never contained) -> median 12, p90 rank ceil(2.7) = 3 -> 30.
    assert stats.time_to_contain.model_dump() == {"count": 3, "median_s": 12.0, "p90_s": 30.0}
    # decide, per question: 45, 60, 300, 1200 -> median (60 + 300) / 2, p90 rank ceil(3.6) = 4 -> 1200.
    assert stats.time_to_decide.model_dump() == {"count": 4, "median_s": 180.0, "p90_s": 1200.0}
    assert stats.left_out == {"ec2-e-20260301T090000Z": "still open: its report is written when it ends"}
    assert [f.incident_id[:5] for f in stats.records] == ["ec2-a", "ec2-b", "ec2-c", "ec2-d", "ec2-e"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _charts(page: str) -> dict[str, ET.Element]:
    charts = {}
    for piece in page.split("<svg")[1:]:
        svg = ET.fromstring("<svg" + piece.split("</svg>")[0] + "</svg>")
        charts[svg.get("id")] = svg
    return charts


def test_the_page_draws_incidents_per_day_and_each_time_over_the_window():
    stats = compute(FACTS, "3d", T0 - timedelta(days=1), T0 + timedelta(days=2))
    page = render_stats_html(stats)
    charts = _charts(page)
    assert set(charts) == {"per-day", "time-to-contain", "time-to-decide"}
    days = [r for r in charts["per-day"].iter(f"{{{SVG_NS}}}rect") if r.get("class") == "day"]
    # a closed on the 1st; b, c, d on the 2nd (90000s to 96000s after 09:00 on the 1st): one bar per outcome.
    assert sorted((r.get("data-day"), r.get("data-outcome"), r.get("data-count")) for r in days) == [
        ("2026-03-01", "resolved", "1"),
        ("2026-03-02", "failed", "1"),
        ("2026-03-02", "resolved", "1"),
        ("2026-03-02", "rolled_back", "1"),
    ]
    heights = {r.get("data-day"): float(r.get("height")) for r in days}
    assert heights["2026-03-01"] == heights["2026-03-02"], "one incident, one unit of height"
    dots = [c for c in charts["time-to-contain"].iter(f"{{{SVG_NS}}}circle")]
    assert sorted(float(d.get("data-seconds")) for d in dots) == [4.0, 12.0, 30.0]
    assert {"median", "p90"} <= {line.get("class") for line in charts["time-to-contain"].iter(f"{{{SVG_NS}}}line")}
    assert len(list(charts["time-to-decide"].iter(f"{{{SVG_NS}}}circle"))) == 4
    for svg in charts.values():
        assert svg.get("role") == "img" and svg.find(f"{{{SVG_NS}}}title") is not None
    assert "(no report)" in page and "still open: its report is written when it ends" in page


def summary_rows(page: str) -> list[list[str]]:
    """The cells of the page's figures table (the first table of its summary), row by row, as text."""
    summary = page.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", summary)]


def test_the_page_states_each_figure_what_it_runs_from_and_to_over_what():
    page = render_stats_html(compute(FACTS, "3d", T0 - timedelta(days=1), T0 + timedelta(days=2)))
    assert summary_rows(page) == [
        ["figure", "from", "to", "over", "median", "p90"],
        ["time to contain", "finding received", "contained", "3 incident(s)", "12s", "30s"],
        ["time to decide", "question asked", "decided", "4 question(s)", "3m 0s", "20m 0s"],
    ]
    assert [row[:3] for row in summary_rows(page)[1:]] == [[f.name, f.start, f.end] for f in FIGURES]


def test_the_page_is_self_contained_and_escapes_what_visibility_returned():
    hostile = _facts("x", "resolved", 60, finding_type="<script>alert(1)</script>", playbook='"><img src=x>',
                     report="s3://b/x", time_to_contain_s=1.0)  # fmt: skip
    hostile = hostile.model_copy(update={"incident_id": "ec2-<b>x</b>"})
    page = render_stats_html(compute([hostile], "1d", T0, T0 + timedelta(days=1)))
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parser = _Tags()
    parser.feed(page)
    tags = parser.tags
    assert {t for t, _ in tags}.isdisjoint({"script", "link", "img", "iframe", "object", "embed", "image", "use"})
    assert all(a["href"].startswith("#") for _, a in tags if "href" in a)
    assert not any(name == "src" or name.startswith("on") for _, a in tags for name in a)
    csp = next(a["content"] for _, a in tags if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert _charts(page)["time-to-contain"].find(f"{{{SVG_NS}}}circle/{{{SVG_NS}}}title").text == "ec2-<b>x</b>: 1s"


def test_nothing_in_the_window_is_said_not_drawn_empty():
    page = render_stats_html(compute([], "12h", T0, T0 + timedelta(hours=12)))
    assert f"{CONTAIN_TITLE}: nothing to draw" in page
    assert "No incident in the window." in page
    assert set(_charts(page)) == {"per-day"}
