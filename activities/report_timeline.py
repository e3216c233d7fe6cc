"""The incident's timeline as a picture for the HTML report: inline SVG, drawn from the incident's record only.

Each phase the incident went through is a bar on a time axis (UTC), from when it was entered (the first
timeline entry in that phase) until the next phase was; the last one ends at the last moment the record holds.
A phase entered twice (a decision asked before containment, then again before eradication) has two bars on its
lane. A phase that lasted no time is still drawn, `MIN_BAR` pixels wide. Decisions and escalations (a missed
deadline, containment found undone) are marks; every bar and mark says what it is in a tooltip (`<title>`).

No script and nothing fetched, like the rest of the page; every text goes through the page's own escaping
(`report_html.escape`): finding titles, analysts' comments and who changed what reach the tooltips.
`TimeAxis` is the time scale `irflow stats --html` draws on too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from activities.report_html import Markup, escape
from activities.report_wording import decision_text, drift_text, duration_text, escalation_texts, time_text
from irflow.models.incident import IncidentState, Phase, TimelineEntry

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 960  # the page's main column is wider; CSS scales the picture down on a narrow screen
LABEL_WIDTH = 250
RIGHT = 28
TOP = 10
LANE = 28
BAR = 16
AXIS = 48  # under the lanes: tick labels, and what time they are in
MIN_BAR = 4  # a phase that lasted no time still shows
MARK = 6

PHASE_LABELS = {
    Phase.DETECTION: "detection & analysis",
    Phase.CONTAINMENT: "containment",
    Phase.EVIDENCE: "evidence",
    Phase.DECISION: "analyst decision",
    Phase.ERADICATION: "eradication & recovery",
    Phase.REPORT: "post-incident",
    Phase.DONE: "done",
}
PHASE_COLOURS = {
    Phase.DETECTION: "#4a6fa5",
    Phase.CONTAINMENT: "#b8433f",
    Phase.EVIDENCE: "#7a5c9e",
    Phase.DECISION: "#d99a22",
    Phase.ERADICATION: "#3f8a52",
    Phase.REPORT: "#66717f",
    Phase.DONE: "#2b3441",
}
DECISION_COLOURS = {"approve": "#3f8a52", "reject": "#b8433f", "release": "#4a6fa5", "note": "#8a94a3"}
ESCALATION_COLOUR = "#b8433f"
INK, MUTED, GRID = "#1d2430", "#5b6574", "#d8dde5"

# Round steps in seconds, for ticks (`nice_step`); beyond a week a step is a whole number of weeks.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
MAX_TICKS = 8
_DAY = 86400


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def tag(name: str, content: Any = "", /, **attributes: Any) -> Markup:
    """One SVG element; attribute names in Python spelling (`class_`, `text_anchor`, `data_phase`), every value
    and the content escaped unless already markup (numbers are written with one decimal at most)."""
    rendered = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{_number(value) if isinstance(value, float) else escape(value)}"'
        for key, value in attributes.items()
        if value is not None
    )
    inner = "".join(escape(part) for part in content) if isinstance(content, list) else escape(content)
    return Markup(f"<{name}{rendered}>{inner}</{name}>" if inner else f"<{name}{rendered}/>")


def svg_root(
    ident: str, title: str, description: str, parts: list[Markup], *, width: int, height: int, class_: str
) -> Markup:
    """A picture inline in the page: `<svg id=ident>`, an image to assistive technology, named by its `<title>`
    and described by its `<desc>` (ids `ident`-title and `ident`-desc), `width` x `height` pixels at most (the
    viewBox: CSS scales it down), in the page's font."""
    return tag(
        "svg",
        [tag("title", title, id=f"{ident}-title"), tag("desc", description, id=f"{ident}-desc"), *parts],
        xmlns=SVG_NS,
        role="img",
        aria_labelledby=f"{ident}-title {ident}-desc",
        viewBox=f"0 0 {width} {height}",
        width=str(width),
        height=str(height),
        font_family="system-ui, sans-serif",
        font_size="12",
        class_=class_,
        id=ident,
    )


def nice_step(span: float, max_ticks: int) -> int:
    """The smallest round step (seconds) cutting `span` seconds into at most `max_ticks` intervals."""
    return next((s for s in _STEPS if span / s <= max_ticks), None) or 604800 * math.ceil(span / max_ticks / 604800)


class TimeAxis:
    """A linear time scale onto the pixels [left, right], widened to whole tick steps on both sides so its ends
    carry labels; a span of no time at all becomes one step."""

    def __init__(self, start: datetime, end: datetime, left: float, right: float) -> None:
        self.step = nice_step(max((end - start).total_seconds(), 1.0), MAX_TICKS)
        self.first = math.floor(start.timestamp() / self.step) * self.step
        self.last = max(math.ceil(end.timestamp() / self.step) * self.step, self.first + self.step)
        self.left, self.right = left, right

    def x(self, moment: datetime) -> float:
        return self.left + (moment.timestamp() - self.first) / (self.last - self.first) * (self.right - self.left)

    def moments(self) -> list[datetime]:
        count = round((self.last - self.first) / self.step)
        return [datetime.fromtimestamp(self.first + i * self.step, UTC) for i in range(count + 1)]

    def ticks(self) -> list[tuple[float, str]]:
        """(x, label) of each tick: seconds when the step is under a minute, the date when it spans days."""
        moments = self.moments()
        if self.step >= _DAY:
            pattern = "%Y-%m-%d"
        else:
            pattern = "%H:%M:%S" if self.step < 60 else "%H:%M"
            if moments[0].date() != moments[-1].date():
                pattern = "%m-%d " + pattern
        return [(self.x(m), m.strftime(pattern)) for m in moments]

    def draw(self, top: float, bottom: float) -> list[Markup]:
        """Grid lines from `top` to `bottom` and the tick labels under them."""
        parts = []
        for x, label in self.ticks():
            parts.append(tag("line", x1=x, x2=x, y1=top, y2=bottom, stroke=GRID, class_="grid"))
            parts.append(tag("text", label, x=x, y=bottom + 16, text_anchor="middle", fill=MUTED, class_="tick"))
        return parts


@dataclass(frozen=True)
class PhaseSpan:
    """One stay in a phase: entered with `event` at `start`, left at `end` (when the next phase was entered)."""

    phase: Phase
    start: datetime
    end: datetime
    event: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def record_end(state: IncidentState) -> datetime | None:
    """The last moment the record holds: its timeline, decisions, escalations, drifts, closing."""
    moments = [
        *(t.at for t in state.timeline),
        *(d.at for d in state.decisions),
        *state.escalations,
        *(d.at for d in state.drifts),
        *([state.closed_at] if state.closed_at else []),
    ]
    return max(moments, default=None)


def phase_entries(timeline: list[TimelineEntry]) -> list[TimelineEntry]:
    """The entries that begin a stay in a phase: each whose phase is not the previous entry's."""
    return [entry for i, entry in enumerate(timeline) if i == 0 or entry.phase != timeline[i - 1].phase]


def phase_spans(state: IncidentState) -> list[PhaseSpan]:
    """Each stay in a phase, in order, from its first entry until the next stay's (the last until `record_end`)."""
    starts = phase_entries(state.timeline)
    end = record_end(state)
    return [
        PhaseSpan(
            entry.phase,
            entry.at,
            starts[i + 1].at if i + 1 < len(starts) else max(end or entry.at, entry.at),
            entry.event,
        )
        for i, entry in enumerate(starts)
    ]


def _short(seconds: float) -> str:
    """A duration as the report words it, to a tenth of a second (a label has no room for microseconds)."""
    return duration_text(round(seconds, 1))


def _triangle(x: float, y: float) -> str:
    corners = [(x, y - MARK), (x + MARK, y + MARK), (x - MARK, y + MARK)]
    return "M" + "L".join(f"{_number(a)} {_number(b)}" for a, b in corners) + "Z"


def _escalation_marks(state: IncidentState) -> list[tuple[datetime, str, str]]:
    """(when, kind, what) of each escalation (with why), and of each drift found again without escalating."""
    marks = [(at, "escalation", f"escalated at {time_text(at)}: {why}") for at, why in escalation_texts(state)]
    marks += [
        (d.at, "drift", f"found again at {time_text(d.at)}, not escalated again: {drift_text(d)}")
        for d in state.drifts
        if not d.escalated
    ]
    return marks


def _label(text: str, y: float) -> Markup:
    return tag("text", text, x=float(LABEL_WIDTH - 10), y=y + 4, text_anchor="end", fill=INK, class_="lane")


def timeline_svg(state: IncidentState) -> Markup:
    """The timeline picture (a sentence instead when the record holds no phase)."""
    spans = phase_spans(state)
    if not spans:
        return Markup('<p class="muted">No phase was recorded: nothing to draw.</p>')
    lanes = [phase for phase in Phase if any(s.phase == phase for s in spans)]
    escalations = _escalation_marks(state)
    rows = len(lanes) + bool(state.decisions) + bool(escalations)
    bottom = TOP + rows * LANE
    height = bottom + AXIS
    axis = TimeAxis(spans[0].start, max(s.end for s in spans), LABEL_WIDTH, WIDTH - RIGHT)
    parts = axis.draw(TOP, bottom)
    caption = "times in UTC" if axis.step >= _DAY else f"times in UTC, from {axis.moments()[0]:%Y-%m-%d}"
    parts.append(tag("text", caption, x=float(LABEL_WIDTH), y=bottom + 34, fill=MUTED, class_="caption"))
    for row, phase in enumerate(lanes):
        y = TOP + row * LANE
        stays = [s for s in spans if s.phase == phase]
        name = PHASE_LABELS[phase]
        parts.append(_label(f"{name} · {_short(sum(s.seconds for s in stays))}", y + LANE / 2))
        for stay in stays:
            x = axis.x(stay.start)
            tooltip = f"{name}: {time_text(stay.start)} → {time_text(stay.end)} ({_short(stay.seconds)}); {stay.event}"
            parts.append(
                tag(
                    "rect",
                    [tag("title", tooltip)],
                    x=x,
                    y=y + (LANE - BAR) / 2,
                    width=max(axis.x(stay.end) - x, float(MIN_BAR)),
                    height=float(BAR),
                    rx=2.0,
                    fill=PHASE_COLOURS[phase],
                    class_="phase",
                    data_phase=phase.value,
                )
            )
    row = len(lanes)
    if state.decisions:
        middle = TOP + row * LANE + LANE / 2
        parts.append(_label(f"decisions · {len(state.decisions)}", middle))
        for d in state.decisions:
            colour = DECISION_COLOURS.get(d.kind, MUTED)
            parts.append(
                tag(
                    "circle",
                    [tag("title", decision_text(d))],
                    cx=axis.x(d.at),
                    cy=middle,
                    r=float(MARK if d.kind != "note" else MARK - 2),
                    fill=colour if d.accepted else "#ffffff",
                    stroke=colour if d.accepted else ESCALATION_COLOUR,
                    stroke_width=2.0,
                    class_="mark decision",
                    data_kind=d.kind.value,
                )
            )
        row += 1
    if escalations:
        middle = TOP + row * LANE + LANE / 2
        parts.append(_label(f"escalations · {len(escalations)}", middle))
        for at, kind, text in escalations:
            x = axis.x(at)
            fill = ESCALATION_COLOUR if kind == "escalation" else "#ffffff"
            parts.append(
                tag(
                    "path",
                    [tag("title", text)],
                    d=_triangle(x, middle),
                    fill=fill,
                    stroke=ESCALATION_COLOUR,
                    stroke_width=2.0,
                    class_=f"mark {kind}",
                )
            )
    summary = "; ".join(f"{PHASE_LABELS[p]} {_short(sum(s.seconds for s in spans if s.phase == p))}" for p in lanes)
    description = (
        f"Phases on a time axis (UTC) from {time_text(spans[0].start)} to {time_text(spans[-1].end)}: {summary}. "
        f"{len(state.decisions)} decision(s), {len(escalations)} escalation(s)."
    )
    title = f"Timeline of incident {state.incident_id}"
    return svg_root("timeline-svg", title, description, parts, width=WIDTH, height=height, class_="timeline")
