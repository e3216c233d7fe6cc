"""The post-incident report as one self-contained HTML page, to hand around: inline CSS, no scripts, no
external resources, and every value escaped (finding titles and analyst comments are attacker- and
analyst-written). The same sections as the JSON document and the Markdown of `report`, worded alike; the
timeline also drawn, as inline SVG (`report_timeline`).

The building blocks (`escape`, `Markup`, `table`, `section`, `page`...) are also those of the report's timeline
and of `irflow stats --html` (irflow/stats.py): one escaping, one policy for every page irflow writes.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any

from activities.report_wording import (
    MILESTONE_LABELS,
    copy_text,
    digest_text,
    duration_text,
    escalation_texts,
    memory_facts,
    outcome_text,
    time_text,
)
from irflow.models.incident import ActionRecord, IncidentState
from irflow.models.sequence import ChildIncident

HTML_CONTENT_TYPE = "text/html; charset=utf-8"

CSS = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6574; --line: #d8dde5; --band: #f4f6f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
header { background: #1d2430; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 20px; word-break: break-all; }
header p { margin: 0; color: #c8d0dc; }
nav { padding: 8px 32px; background: var(--band); border-bottom: 1px solid var(--line); }
nav a { margin-right: 14px; color: #2a5db0; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1400px; }
section { margin-top: 28px; }
h2 { font-size: 16px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.when { white-space: nowrap; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
td code, dd code { word-break: break-all; }
pre { background: var(--band); padding: 10px; overflow: auto; white-space: pre-wrap; word-break: break-all; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dt { color: var(--muted); }
dd { margin: 0; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; background: #e4e8ee; white-space: nowrap; }
.s-done, .s-resolved, .s-undone, .s-accepted { background: #d9f2e0; color: #145a2a; }
.s-failed, .s-undo_failed, .s-refused, .s-rolled_back { background: #fbdcdc; color: #7d1616; }
.s-skipped, .s-escalated, .s-awaiting_decision { background: #fdf0cf; color: #6b4b00; }
.error { color: #7d1616; }
.muted { color: var(--muted); }
footer { padding: 16px 32px; color: var(--muted); border-top: 1px solid var(--line); }
svg.timeline, svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0 12px; }
@media print {
  nav { display: none; }
  header { background: none; color: var(--ink); }
  header p { color: var(--muted); }
}
"""

# Even if something escaped the escaping, the page could run nothing and fetch nothing.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


class Markup(str):
    """HTML already escaped (built here from escaped parts); everything else is escaped on output."""


def escape(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("—")
    return Markup(html.escape(str(value), quote=True))


def code(value: Any) -> Markup:
    return Markup(f"<code>{escape(value)}</code>")


def badge(value: Any) -> Markup:
    css = re.sub(r"[^a-z0-9_-]", "", str(value).lower())
    return Markup(f'<span class="badge s-{css}">{escape(value)}</span>')


class _Cell(Markup):
    """Escaped content for a table cell with a CSS class (numbers right-aligned, times unbroken)."""

    css = ""


class _Num(_Cell):
    css = "num"


class _When(_Cell):
    css = "when"


def num(value: Any) -> _Num:
    return _Num(escape(value))


def when(moment: datetime | None) -> _When:
    return _When(escape(time_text(moment)))


def _td(cell: Any) -> str:
    return f'<td class="{cell.css}">{cell}</td>' if isinstance(cell, _Cell) else f"<td>{escape(cell)}</td>"


def table(headers: list[str], rows: list[list[Any]], empty: str) -> Markup:
    if not rows:
        return Markup(f'<p class="muted">{escape(empty)}</p>')
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def section(ident: str, title: str, *parts: Any) -> Markup:
    return Markup(f'<section id="{ident}"><h2>{escape(title)}</h2>{"".join(escape(p) for p in parts)}</section>')


def definitions(items: list[tuple[str, Any]]) -> Markup:
    return Markup("<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>")


def _action_rows(records: list[ActionRecord]) -> list[list[Any]]:
    return [
        [
            num(i),
            code(a.name),
            a.phase,
            badge(a.status),
            when(a.started_at),
            when(a.finished_at),
            Markup(f'<span class="error">{escape(a.error)}</span>') if a.error else code(outcome_text(a)),
        ]
        for i, a in enumerate(records, 1)
    ]


SECTIONS = [
    ("summary", "Summary"),
    ("findings", "Findings"),
    ("metrics", "Metrics"),
    ("analysis", "Analysis"),
    ("timeline", "Timeline"),
    ("actions", "Actions"),
    ("compensations", "Compensation"),
    ("decisions", "Decisions"),
    ("escalations", "Escalations"),
    ("evidence", "Evidence"),
    ("snapshots", "Snapshots"),
    ("memory-capture", "Memory capture"),
    ("prior-state", "Prior state"),
]
# Only in an attack sequence's report, after its findings: the incidents it opened or joined.
CHILDREN_SECTION = ("children", "Child incidents")
CHILDREN_HEADING = "Incidents of the resources the sequence names"  # as the Markdown heads it


def sections_of(state: IncidentState) -> list[tuple[str, str]]:
    """The page's sections, in order: every one of SECTIONS, and the child incidents when there are any."""
    if not state.children:
        return list(SECTIONS)
    at = [ident for ident, _ in SECTIONS].index("findings") + 1
    return [*SECTIONS[:at], CHILDREN_SECTION, *SECTIONS[at:]]


def _children(children: list[ChildIncident]) -> Markup:
    return table(
        ["incident", "resource", "playbook", "opened or joined", "status", "time to contain", "decisions"],
        [
            [
                code(c.incident_id),
                Markup(f"{escape(c.resource_type)} {code(c.resource_id)}"),
                c.playbook,
                "joined (was running)" if c.joined else "opened",
                badge(c.status or "unknown"),
                num(duration_text(c.time_to_contain_seconds)),
                "; ".join(c.decisions) or None,
            ]
            for c in children
        ],
        "",
    )


def page(title: str, header: Markup, nav: Markup, main: list[Markup], footer: Markup) -> str:
    """A whole page of irflow's: the CSS inline, the policy that lets it run nothing and fetch nothing."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<header>{header}</header><nav>{nav}</nav>\n<main>{''.join(main)}</main>\n"
        f"<footer>{footer}</footer></body></html>\n"
    )


def render_html(state: IncidentState) -> str:
    """One self-contained page: inline CSS, no script, nothing fetched, every value escaped."""
    from activities.report_timeline import timeline_svg  # it draws with this module's escaping

    f = state.finding
    metrics = state.metrics()
    summary = [
        ("status", badge(state.status)),
        ("phase", state.phase),
        ("severity", f"{state.severity} (GuardDuty score {f.severity_score})"),
        ("finding", Markup(f"{code(f.type)} {escape(f.id)}")),
        ("title", f.title),
        (
            "resource",
            Markup(
                f"{escape(f.resource.resource_type)} {code(state.resource_id)} in "
                f"{escape(f.account_id)}/{escape(f.region)}"
            ),
        ),
        ("playbook", state.playbook),
        ("findings absorbed", f"{state.absorbed_count()} ({state.finding_deliveries} deliveries)"),
        ("eradication", state.eradication),
        ("related incidents", ", ".join(state.related_incidents) or None),
    ]
    if state.failure_reason:
        summary.append(("failure", Markup(f'<span class="error">{escape(state.failure_reason)}</span>')))
    findings = table(
        ["first seen (UTC)", "finding", "type", "severity", "count", "title"],
        [
            [
                when(x.observed_at),
                code(x.id),
                code(x.type),
                f"{x.severity} ({x.severity_score})",
                num(x.count),
                x.title,
            ]
            for x in state.findings_absorbed or [f]
        ],
        "No finding recorded.",
    )
    milestones = table(
        ["milestone", "time (UTC)"],
        [[MILESTONE_LABELS[name], when(at)] for name, at in state.milestones().items()],
        "",
    )
    measures = table(
        ["measure", "seconds", "duration"],
        [[code(name), num("—" if v is None else v), num(duration_text(v))] for name, v in metrics.items()],
        "",
    )
    decisions = table(
        ["time (UTC)", "decision", "stage", "by", "via", "verdict", "eradication", "comment"],
        [
            [
                when(d.at),
                badge(d.kind),
                d.stage,
                code(d.by),
                d.via,
                Markup(f"{badge('accepted' if d.accepted else 'refused')} {escape(d.refusal or '')}"),
                d.eradication,
                d.comment or None,
            ]
            for d in state.decisions
        ],
        "No analyst decision was recorded.",
    )
    escalations = table(
        ["time (UTC)", "what happened"],
        [[when(at), why] for at, why in escalation_texts(state)],
        "No escalation: every decision came before its deadline.",
    )
    evidence = table(
        ["kind", "object", "SHA-256", "size (bytes)", "version id", "retained until", "lock mode"],
        [
            [
                e.kind,
                code(f"s3://{e.bucket}/{e.key}"),
                code(e.sha256),
                num(e.size),
                code(e.version_id or "—"),
                when(e.retain_until),
                e.lock_mode or "no lock",
            ]
            for e in state.evidence
        ],
        "No evidence was stored.",
    )
    snapshots = table(
        ["snapshot", "volume", "state", "started (UTC)", "SHA-256 of its written blocks", "forensic copy"],
        [
            [code(s.snapshot_id), code(s.volume_id), s.state, when(s.started_at), digest_text(s), copy_text(s)]
            for s in state.snapshots
        ],
        "No snapshot was taken.",
    )
    m = state.memory_capture
    memory = (
        definitions(
            [
                *((label, text) for label, text in memory_facts(m) if text),
                ("status", badge(m.status)),
                ("record", code(m.evidence.key) if m.evidence else None),
            ]
        )
        if m
        else Markup('<p class="muted">No memory capture was attempted.</p>')
    )
    prior = state.context.model_dump(mode="json") if state.context else state.resource_context
    prior_html = (
        Markup(f"<pre>{escape(json.dumps(prior, indent=2, sort_keys=True, default=str))}</pre>")
        if prior
        else Markup('<p class="muted">No prior state was captured.</p>')
    )
    body = [
        section("summary", "Summary", definitions(summary)),
        section("findings", "Findings", findings),
        *([section("children", CHILDREN_HEADING, _children(state.children))] if state.children else []),
        section("metrics", "Metrics", milestones, measures),
        section(
            "analysis",
            "Analysis",
            Markup("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in state.plan_reasons) + "</ul>")
            if state.plan_reasons
            else Markup('<p class="muted">No analysis notes.</p>'),
        ),
        section(
            "timeline",
            "Timeline",
            timeline_svg(state),
            table(
                ["time (UTC)", "phase", "event"],
                [[when(t.at), t.phase, t.event] for t in state.timeline],
                "No event recorded.",
            ),
        ),
        section(
            "actions",
            "Actions",
            table(
                ["#", "action", "phase", "status", "started (UTC)", "finished (UTC)", "result or error"],
                _action_rows(state.actions),
                "No action was run.",
            ),
        ),
        section(
            "compensations",
            "Compensation (undone in reverse order)",
            table(
                ["#", "undo", "phase", "status", "started (UTC)", "finished (UTC)", "result or error"],
                _action_rows(state.compensations),
                "Nothing was undone.",
            ),
        ),
        section("decisions", "Decisions", decisions),
        section("escalations", "Escalations", escalations),
        section("evidence", "Evidence", evidence),
        section("snapshots", "Snapshots", snapshots),
        section("memory-capture", "Memory capture", memory),
        section("prior-state", "Prior state", prior_html),
    ]
    nav = "".join(f'<a href="#{ident}">{escape(title)}</a>' for ident, title in sections_of(state))
    title = f"Incident {state.incident_id}"
    header = (
        f"<h1>{escape(title)}</h1><p>{escape(state.status)} · {escape(state.severity)} · {escape(f.type)} on "
        f"{escape(state.resource_id)}</p>"
    )
    footer = f"Post-incident report generated by irflow from the workflow's own record (phase {escape(state.phase)})."
    return page(f"{title} — irflow post-incident report", Markup(header), Markup(nav), body, Markup(footer))
