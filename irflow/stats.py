"""`irflow stats`: how many incidents, of what kind, how they ended, and how fast they were contained and
decided, over the incidents that finished lately: the figures (`compute`) and the page that draws them over
time (`render_stats_html`). Pure: the command (irflow/cli/stats.py) reads Temporal visibility and the stored
reports and hands them here; docs/reports.md says the same for people.

Where each figure comes from:
- which incidents, their finding type and their outcome: Temporal visibility (`WorkflowType =
  'IncidentWorkflow'`, irflow's search attributes): those closed within the window, and those still running
  that opened within it. Every one of them is counted.
- the playbook and the times: each incident's stored report (`report/report.json` in the evidence bucket), the
  record the incident wrote itself when it finished, under Object Lock. Not the workflow's result: a failed
  incident ends with an error and no result, a result lives only as long as the namespace keeps its history,
  and the payload codec may have sealed it. An incident without a stored report (still open, no evidence
  bucket, nothing stored) is counted and left out of the times, saying why.

What the times are:
- time to contain: the report's own `detected_to_contained_s`, from the finding's arrival at irflow
  (`received_at`) to containment done (`contained_at`): what irflow answers for. GuardDuty's delay before it
  publishes a finding is not in it (the report's `observed_to_contained_s` has it). An incident never contained
  (rejected before containment, triage only, containment failed) has none.
- time to decide: per question put to the analysts (each time the incident entered the analyst-decision phase,
  by its timeline), the time until the decision that settled it: the last accepted approve, reject or release
  before the next phase (with two approvers, the second approval). Notes, refused decisions and the timeout's
  default are not decisions: the figure measures how long people took to answer, and the timeout's default is
  nobody answering (the report's milestones count it, as the decision the workflow acted on). A question
  nobody answered is left out.
- median: `statistics.median` (the middle value; for an even count, the mean of the two middle ones).
  p90: the nearest rank, the smallest value that at least 90% of the values are at or below (sorted values,
  index ceil(0.9 n) - 1): always one of the incidents' own figures.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from activities.report_html import Markup, badge, code, definitions, escape, num, page, section, table, when
from activities.report_timeline import GRID, INK, MUTED, TimeAxis, nice_step, phase_entries, svg_root, tag
from activities.report_wording import duration_text, time_text
from irflow.models.incident import Decision, Phase, TimelineEntry

REPORT_JSON = "report/report.json"  # where write_report (activities/report.py) keeps the JSON report
OPEN = "open"
FINAL_STATUSES = ("resolved", "rolled_back", "failed")
NO_PLAYBOOK = "(no report)"
TIMEOUT_VIA = "timeout"  # how the decision the timeout applies arrives (workflows/decisions.py)


def outcome_of(status: str | None, execution_status: str | None) -> str:
    """`open` while the workflow runs; then irflow's final status (IrflowStatus), or, when the workflow ended
    without reaching one (terminated, timed out), how the workflow ended."""
    if execution_status == "RUNNING":
        return OPEN
    if status in FINAL_STATUSES:
        return str(status)
    return (execution_status or "unknown").lower()


def time_to_contain(document: dict[str, Any]) -> float | None:
    """The report's detected_to_contained_s: the finding's arrival at irflow to containment done."""
    value = (document.get("metrics") or {}).get("detected_to_contained_s")
    return None if value is None else float(value)


def decided_by_a_person(decision: Decision) -> bool:
    """A decision that settles its question (`Decision.settles`: accepted, not a note) and that a person took:
    not the default the timeout applies when nobody answered (`via` "timeout", by irflow), which the report's
    milestones do count, as the decision the workflow acted on."""
    return decision.settles and decision.via != TIMEOUT_VIA


def times_to_decide(timeline: list[TimelineEntry], decisions: list[Decision]) -> list[float]:
    """Seconds from each question (an entry into the analyst-decision phase) to the decision that settled it."""
    starts = phase_entries(timeline)
    settling = [d.at for d in decisions if decided_by_a_person(d)]
    times = []
    for i, entry in enumerate(starts):
        if entry.phase != Phase.DECISION:
            continue
        until = starts[i + 1].at if i + 1 < len(starts) else None
        answers = [at for at in settling if entry.at <= at and (until is None or at <= until)]
        if answers:
            times.append(round((max(answers) - entry.at).total_seconds(), 3))
    return times


def nearest_rank(values: Iterable[float], percent: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(math.ceil(percent / 100 * len(ordered)), 1) - 1]


class IncidentFacts(BaseModel):
    """One incident: what visibility lists, and what its stored report adds."""

    workflow_id: str
    run_id: str | None = None
    incident_id: str
    finding_type: str | None = None
    outcome: str
    started_at: datetime | None = None
    closed_at: datetime | None = None
    playbook: str | None = None
    report: str | None = Field(default=None, description="s3://bucket/key of the report read")
    no_report: str | None = Field(default=None, description="why no report was read: left out of the times")
    time_to_contain_s: float | None = None
    times_to_decide_s: list[float] = Field(default_factory=list)

    def with_report(self, document: dict[str, Any], where: str) -> IncidentFacts:
        """These facts completed from the incident's stored report (ValueError when it is not one)."""
        timeline = [TimelineEntry.model_validate(t) for t in document.get("timeline") or []]
        decisions = [Decision.model_validate(d) for d in document.get("decisions") or []]
        return self.model_copy(
            update={
                "playbook": document.get("playbook"),
                "report": where,
                "no_report": None,
                "time_to_contain_s": time_to_contain(document),
                "times_to_decide_s": times_to_decide(timeline, decisions),
            }
        )


class Figure(BaseModel):
    count: int = Field(description="how many values: incidents contained, questions decided")
    median_s: float | None
    p90_s: float | None


def figure(values: list[float]) -> Figure:
    return Figure(
        count=len(values),
        median_s=round(statistics.median(values), 3) if values else None,
        p90_s=nearest_rank(values, 90),
    )


class Stats(BaseModel):
    since: str
    window_start: datetime
    window_end: datetime
    incidents: int = Field(description="finished within the window, and still open that opened within it")
    finished: int
    open: int
    with_report: int = Field(description="incidents whose stored report was read: the times are theirs")
    by_finding_type: dict[str, int]
    by_playbook: dict[str, int]
    by_outcome: dict[str, int]
    time_to_contain: Figure = Field(description="detected (finding received) to contained, per incident")
    time_to_decide: Figure = Field(description="question asked to decision that settled it, per question")
    left_out: dict[str, str] = Field(description="incident id: why it has no times (no stored report read)")
    records: list[IncidentFacts] = Field(description="finished in the order they closed, then the open ones")


class FigureRow(NamedTuple):
    """What one figure measures, as the table and the page both say it: from when, to when, over what."""

    name: str
    start: str
    end: str
    field: str  # its Stats attribute
    unit: str


FIGURES = (
    FigureRow("time to contain", "finding received", "contained", "time_to_contain", "incident(s)"),
    FigureRow("time to decide", "question asked", "decided", "time_to_decide", "question(s)"),
)


def figure_rows(stats: Stats) -> list[tuple[FigureRow, Figure]]:
    return [(row, getattr(stats, row.field)) for row in FIGURES]


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda item: (-item[1], item[0])))


def compute(facts: list[IncidentFacts], since: str, start: datetime, end: datetime) -> Stats:
    reported = [f for f in facts if f.report]
    return Stats(
        since=since,
        window_start=start,
        window_end=end,
        incidents=len(facts),
        finished=sum(f.outcome != OPEN for f in facts),
        open=sum(f.outcome == OPEN for f in facts),
        with_report=len(reported),
        by_finding_type=_counts(f.finding_type or "unknown" for f in facts),
        by_playbook=_counts(f.playbook or NO_PLAYBOOK for f in facts),
        by_outcome=_counts(f.outcome for f in facts),
        time_to_contain=figure([f.time_to_contain_s for f in reported if f.time_to_contain_s is not None]),
        time_to_decide=figure([t for f in reported for t in f.times_to_decide_s]),
        left_out={f.incident_id: f.no_report or "no stored report" for f in facts if not f.report},
        records=sorted(facts, key=lambda f: (f.closed_at is None, f.closed_at or f.started_at or end, f.incident_id)),
    )


# --- the page: `irflow stats --html` ---

CHART_WIDTH = 960
CHART_LEFT = 70  # value labels
CHART_RIGHT = 120  # the median's and p90's labels
CHART_TOP = 12
PLOT_HEIGHT = 180
CHART_AXIS = 44
OUTCOME_COLOURS = {"resolved": "#3f8a52", "rolled_back": "#d99a22", "failed": "#b8433f"}
OTHER_COLOUR = "#8a94a3"
DOT_COLOUR = "#4a6fa5"
_DAY = timedelta(days=1)
_PLOT_BOTTOM = CHART_TOP + PLOT_HEIGHT


def _chart(ident: str, title: str, description: str, parts: list[Markup]) -> Markup:
    return svg_root(
        ident, title, description, parts, width=CHART_WIDTH, height=_PLOT_BOTTOM + CHART_AXIS, class_="chart"
    )


def _value_axis(highest: float, label: Callable[[float], str]) -> tuple[Callable[[float], float], list[Markup]]:
    """A scale from 0 at the plot's bottom to a round value at or above `highest`; its grid and labels."""
    step = nice_step(max(highest, 1.0), 4)
    top = max(math.ceil(highest / step), 1) * step

    def y(value: float) -> float:
        return _PLOT_BOTTOM - value / top * PLOT_HEIGHT

    parts = []
    for i in range(round(top / step) + 1):
        at = y(i * step)
        parts.append(tag("line", x1=float(CHART_LEFT), x2=float(CHART_WIDTH - CHART_RIGHT), y1=at, y2=at, stroke=GRID))
        parts.append(tag("text", label(i * step), x=float(CHART_LEFT - 8), y=at + 4, text_anchor="end", fill=MUTED))
    return y, parts


def _time_axis(start: datetime, end: datetime) -> TimeAxis:
    return TimeAxis(start, end, CHART_LEFT, CHART_WIDTH - CHART_RIGHT)


def per_day_chart(stats: Stats) -> Markup:
    """Incidents finished per day (UTC), each day's bar stacked by outcome."""
    first = datetime.combine(stats.window_start.astimezone(UTC).date(), datetime.min.time(), UTC)
    days = [first + i * _DAY for i in range((stats.window_end - first) // _DAY + 1)]
    per_day: dict[datetime, Counter[str]] = {}
    for f in stats.records:
        if f.outcome != OPEN and f.closed_at:
            day = datetime.combine(f.closed_at.astimezone(UTC).date(), datetime.min.time(), UTC)
            per_day.setdefault(day, Counter())[f.outcome] += 1
    axis = _time_axis(days[0], days[-1] + _DAY)
    y, parts = _value_axis(max((sum(c.values()) for c in per_day.values()), default=0), lambda v: str(int(v)))
    parts += axis.draw(CHART_TOP, _PLOT_BOTTOM)
    for day, counts in sorted(per_day.items()):
        x = axis.x(day) + 1
        width = max(axis.x(day + _DAY) - x - 1, 2.0)
        below = 0
        for outcome, count in sorted(counts.items()):
            parts.append(
                tag(
                    "rect",
                    [tag("title", f"{day:%Y-%m-%d}: {count} {outcome}")],
                    x=x,
                    y=y(below + count),
                    width=width,
                    height=y(below) - y(below + count),
                    fill=OUTCOME_COLOURS.get(outcome, OTHER_COLOUR),
                    class_="day",
                    data_day=f"{day:%Y-%m-%d}",
                    data_outcome=outcome,
                    data_count=str(count),
                )
            )
            below += count
    for row, outcome in enumerate(sorted({o for counts in per_day.values() for o in counts})):  # the legend
        top = CHART_TOP + row * 18
        colour = OUTCOME_COLOURS.get(outcome, OTHER_COLOUR)
        parts.append(
            tag("rect", x=CHART_WIDTH - CHART_RIGHT + 12.0, y=float(top), width=10.0, height=10.0, fill=colour)
        )
        parts.append(tag("text", outcome, x=CHART_WIDTH - CHART_RIGHT + 28.0, y=top + 9.0, class_="legend"))
    described = "; ".join(f"{day:%Y-%m-%d} {sum(c.values())}" for day, c in sorted(per_day.items())) or "none"
    return _chart("per-day", "Incidents finished per day (UTC)", f"Incidents finished per day: {described}.", parts)


def dots_chart(
    ident: str, title: str, points: list[tuple[datetime, float, str]], summary: Figure, axis: TimeAxis
) -> Markup:
    """One dot per value at its moment, with the median and the p90 as dashed lines."""
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: nothing to draw, no value in the window.</p>')
    y, parts = _value_axis(max(v for _, v, _ in points) * 1.05, lambda v: duration_text(v))
    parts += axis.draw(CHART_TOP, _PLOT_BOTTOM)
    for at, value, label in points:
        parts.append(
            tag(
                "circle",
                [tag("title", f"{label}: {duration_text(value)}")],
                cx=axis.x(at),
                cy=y(value),
                r=4.0,
                fill=DOT_COLOUR,
                class_="dot",
                data_seconds=str(value),
            )
        )
    label_at = None
    for name, value in (("median", summary.median_s), ("p90", summary.p90_s)):
        if value is None:
            continue
        at = y(value)
        parts.append(
            tag(
                "line",
                x1=float(CHART_LEFT),
                x2=float(CHART_WIDTH - CHART_RIGHT),
                y1=at,
                y2=at,
                stroke=INK,
                stroke_dasharray="5 4",
                class_=name,
            )
        )
        text_y = at + 4 if label_at is None or abs(label_at - at) >= 14 else label_at - 14
        label_at = text_y
        parts.append(tag("text", f"{name} {duration_text(value)}", x=float(CHART_WIDTH - CHART_RIGHT + 6), y=text_y))
    description = (
        f"{len(points)} value(s); median {duration_text(summary.median_s)}, p90 {duration_text(summary.p90_s)}."
    )
    return _chart(ident, title, description, parts)


CONTAIN_TITLE = "Time to contain, per incident (at its close), with the median and the p90"
DECIDE_TITLE = "Time to decide, per question (at the incident's close), with the median and the p90"


def _caption(text: str) -> Markup:
    return Markup(f'<h3 class="muted">{escape(text)}</h3>')


def render_stats_html(stats: Stats) -> str:
    """The figures as one self-contained page, like the report's: inline CSS and SVG, no script, nothing fetched,
    every value escaped (incident ids and finding types come from whoever started the workflows)."""
    axis = _time_axis(stats.window_start, stats.window_end)
    reported = [f for f in stats.records if f.report and f.closed_at]
    contain = [(f.closed_at, f.time_to_contain_s, f.incident_id) for f in reported if f.time_to_contain_s is not None]
    decide = [(f.closed_at, t, f.incident_id) for f in reported for t in f.times_to_decide_s]
    figures = table(
        ["figure", "from", "to", "over", "median", "p90"],
        [
            [
                row.name,
                row.start,
                row.end,
                f"{v.count} {row.unit}",
                num(duration_text(v.median_s)),
                num(duration_text(v.p90_s)),
            ]
            for row, v in figure_rows(stats)
        ],
        "",
    )
    summary = definitions(
        [
            ("window", f"{stats.since}: {time_text(stats.window_start)} to {time_text(stats.window_end)}"),
            ("incidents", f"{stats.incidents}: {stats.finished} finished, {stats.open} still open"),
            ("with a stored report", f"{stats.with_report} (the times are theirs)"),
        ]
    )
    counts = [
        section(ident, heading, table([column, "incidents"], [[code(k), num(v)] for k, v in values.items()], "None."))
        for ident, heading, column, values in (
            ("by-type", "By finding type", "finding type", stats.by_finding_type),
            ("by-playbook", "By playbook", "playbook", stats.by_playbook),
            ("by-outcome", "By outcome", "outcome", stats.by_outcome),
        )
    ]
    incidents = table(
        ["closed (UTC)", "incident", "finding type", "playbook", "outcome", "time to contain", "time(s) to decide"],
        [
            [
                when(f.closed_at),
                code(f.incident_id),
                code(f.finding_type),
                f.playbook,
                badge(f.outcome),
                num(duration_text(f.time_to_contain_s)),
                num(", ".join(duration_text(t) for t in f.times_to_decide_s) or "—"),
            ]
            for f in reversed(stats.records)
        ],
        "No incident in the window.",
    )
    left_out = table(
        ["incident", "why it has no times"],
        [[code(i), why] for i, why in stats.left_out.items()],
        "None: every incident's report was read.",
    )
    main = [
        section("summary", "Summary", summary, figures),
        section(
            "over-time",
            "Over time",
            _caption("Incidents finished per day (UTC), by outcome"),
            per_day_chart(stats),
            _caption(CONTAIN_TITLE),
            dots_chart("time-to-contain", CONTAIN_TITLE, contain, stats.time_to_contain, axis),
            _caption(DECIDE_TITLE),
            dots_chart("time-to-decide", DECIDE_TITLE, decide, stats.time_to_decide, axis),
        ),
        *counts,
        section("incidents", "Incidents, newest first", incidents),
        section("left-out", "Counted, but left out of the times", left_out),
    ]
    nav = "".join(
        f'<a href="#{ident}">{escape(name)}</a>'
        for ident, name in (
            ("summary", "Summary"),
            ("over-time", "Over time"),
            ("by-type", "By type"),
            ("by-playbook", "By playbook"),
            ("by-outcome", "By outcome"),
            ("incidents", "Incidents"),
            ("left-out", "Left out"),
        )
    )
    header = (
        f"<h1>irflow stats: the last {escape(stats.since)}</h1><p>{escape(stats.incidents)} incident(s) · "
        f"time to contain median {escape(duration_text(stats.time_to_contain.median_s))}</p>"
    )
    footer = "From Temporal visibility and each incident's stored report; docs/reports.md says how each figure is made."
    return page(f"irflow stats: the last {stats.since}", Markup(header), Markup(nav), main, Markup(escape(footer)))
