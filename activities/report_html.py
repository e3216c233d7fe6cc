"""The post-incident report as one self-contained HTML page, to hand around: inline CSS, no scripts, no
external resources, and every value escaped (finding titles and analyst comments are attacker- and
analyst-written). The same sections as the JSON document and the Markdown of `report`, worded alike.
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

HTML_CONTENT_TYPE = "text/html; charset=utf-8"

_CSS = """
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
@media print {
  nav { display: none; }
  header { background: none; color: var(--ink); }
  header p { color: var(--muted); }
}
"""

# Even if something escaped the escaping, the page could run nothing and fetch nothing.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


class _Markup(str):
    """HTML already escaped (built here from escaped parts); everything else is escaped on output."""


def _e(value: Any) -> _Markup:
    if isinstance(value, _Markup):
        return value
    if value is None:
        return _Markup("—")
    return _Markup(html.escape(str(value), quote=True))


def _code(value: Any) -> _Markup:
    return _Markup(f"<code>{_e(value)}</code>")


def _badge(value: Any) -> _Markup:
    css = re.sub(r"[^a-z0-9_-]", "", str(value).lower())
    return _Markup(f'<span class="badge s-{css}">{_e(value)}</span>')


class _Cell(_Markup):
    """Escaped content for a table cell with a CSS class (numbers right-aligned, times unbroken)."""

    css = ""


class _Num(_Cell):
    css = "num"


class _When(_Cell):
    css = "when"


def _num(value: Any) -> _Num:
    return _Num(_e(value))


def _when(moment: datetime | None) -> _When:
    return _When(_e(time_text(moment)))


def _td(cell: Any) -> str:
    return f'<td class="{cell.css}">{cell}</td>' if isinstance(cell, _Cell) else f"<td>{_e(cell)}</td>"


def _table(headers: list[str], rows: list[list[Any]], empty: str) -> _Markup:
    if not rows:
        return _Markup(f'<p class="muted">{_e(empty)}</p>')
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return _Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _section(ident: str, title: str, *parts: Any) -> _Markup:
    return _Markup(f'<section id="{ident}"><h2>{_e(title)}</h2>{"".join(_e(p) for p in parts)}</section>')


def _definitions(items: list[tuple[str, Any]]) -> _Markup:
    return _Markup("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>")


def _action_rows(records: list[ActionRecord]) -> list[list[Any]]:
    return [
        [
            _num(i),
            _code(a.name),
            a.phase,
            _badge(a.status),
            _when(a.started_at),
            _when(a.finished_at),
            _Markup(f'<span class="error">{_e(a.error)}</span>') if a.error else _code(outcome_text(a)),
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


def render_html(state: IncidentState) -> str:
    """One self-contained page: inline CSS, no script, nothing fetched, every value escaped."""
    f = state.finding
    metrics = state.metrics()
    summary = [
        ("status", _badge(state.status)),
        ("phase", state.phase),
        ("severity", f"{state.severity} (GuardDuty score {f.severity_score})"),
        ("finding", _Markup(f"{_code(f.type)} {_e(f.id)}")),
        ("title", f.title),
        (
            "resource",
            _Markup(f"{_e(f.resource.resource_type)} {_code(state.resource_id)} in {_e(f.account_id)}/{_e(f.region)}"),
        ),
        ("playbook", state.playbook),
        ("findings absorbed", f"{len(state.findings_absorbed)} ({state.finding_deliveries} deliveries)"),
        ("eradication", state.eradication),
        ("related incidents", ", ".join(state.related_incidents) or None),
    ]
    if state.failure_reason:
        summary.append(("failure", _Markup(f'<span class="error">{_e(state.failure_reason)}</span>')))
    findings = _table(
        ["first seen (UTC)", "finding", "type", "severity", "count", "title"],
        [
            [
                _when(x.observed_at),
                _code(x.id),
                _code(x.type),
                f"{x.severity} ({x.severity_score})",
                _num(x.count),
                x.title,
            ]
            for x in state.findings_absorbed or [f]
        ],
        "No finding recorded.",
    )
    milestones = _table(
        ["milestone", "time (UTC)"],
        [[MILESTONE_LABELS[name], _when(at)] for name, at in state.milestones().items()],
        "",
    )
    measures = _table(
        ["measure", "seconds", "duration"],
        [[_code(name), _num("—" if v is None else v), _num(duration_text(v))] for name, v in metrics.items()],
        "",
    )
    decisions = _table(
        ["time (UTC)", "decision", "stage", "by", "via", "verdict", "eradication", "comment"],
        [
            [
                _when(d.at),
                _badge(d.kind),
                d.stage,
                _code(d.by),
                d.via,
                _Markup(f"{_badge('accepted' if d.accepted else 'refused')} {_e(d.refusal or '')}"),
                d.eradication,
                d.comment or None,
            ]
            for d in state.decisions
        ],
        "No analyst decision was recorded.",
    )
    escalations = _table(
        ["time (UTC)", "what happened"],
        [[_when(at), why] for at, why in escalation_texts(state)],
        "No escalation: every decision came before its deadline.",
    )
    evidence = _table(
        ["kind", "object", "SHA-256", "size (bytes)", "version id", "retained until", "lock mode"],
        [
            [
                e.kind,
                _code(f"s3://{e.bucket}/{e.key}"),
                _code(e.sha256),
                _num(e.size),
                _code(e.version_id or "—"),
                _when(e.retain_until),
                e.lock_mode or "no lock",
            ]
            for e in state.evidence
        ],
        "No evidence was stored.",
    )
    snapshots = _table(
        ["snapshot", "volume", "state", "started (UTC)", "SHA-256 of its written blocks", "forensic copy"],
        [
            [_code(s.snapshot_id), _code(s.volume_id), s.state, _when(s.started_at), digest_text(s), copy_text(s)]
            for s in state.snapshots
        ],
        "No snapshot was taken.",
    )
    m = state.memory_capture
    memory = (
        _definitions(
            [
                *((label, text) for label, text in memory_facts(m) if text),
                ("status", _badge(m.status)),
                ("record", _code(m.evidence.key) if m.evidence else None),
            ]
        )
        if m
        else _Markup('<p class="muted">No memory capture was attempted.</p>')
    )
    prior = state.context.model_dump(mode="json") if state.context else state.resource_context
    prior_html = (
        _Markup(f"<pre>{_e(json.dumps(prior, indent=2, sort_keys=True, default=str))}</pre>")
        if prior
        else _Markup('<p class="muted">No prior state was captured.</p>')
    )
    body = [
        _section("summary", "Summary", _definitions(summary)),
        _section("findings", "Findings", findings),
        _section("metrics", "Metrics", milestones, measures),
        _section(
            "analysis",
            "Analysis",
            _Markup("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in state.plan_reasons) + "</ul>")
            if state.plan_reasons
            else _Markup('<p class="muted">No analysis notes.</p>'),
        ),
        _section(
            "timeline",
            "Timeline",
            _table(
                ["time (UTC)", "phase", "event"],
                [[_when(t.at), t.phase, t.event] for t in state.timeline],
                "No event recorded.",
            ),
        ),
        _section(
            "actions",
            "Actions",
            _table(
                ["#", "action", "phase", "status", "started (UTC)", "finished (UTC)", "result or error"],
                _action_rows(state.actions),
                "No action was run.",
            ),
        ),
        _section(
            "compensations",
            "Compensation (undone in reverse order)",
            _table(
                ["#", "undo", "phase", "status", "started (UTC)", "finished (UTC)", "result or error"],
                _action_rows(state.compensations),
                "Nothing was undone.",
            ),
        ),
        _section("decisions", "Decisions", decisions),
        _section("escalations", "Escalations", escalations),
        _section("evidence", "Evidence", evidence),
        _section("snapshots", "Snapshots", snapshots),
        _section("memory-capture", "Memory capture", memory),
        _section("prior-state", "Prior state", prior_html),
    ]
    nav = "".join(f'<a href="#{ident}">{_e(title)}</a>' for ident, title in SECTIONS)
    title = f"Incident {state.incident_id}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} — irflow post-incident report</title><style>{_CSS}</style></head>\n<body>"
        f"<header><h1>{_e(title)}</h1><p>{_e(state.status)} · {_e(state.severity)} · {_e(f.type)} on "
        f"{_e(state.resource_id)}</p></header><nav>{nav}</nav>\n<main>{''.join(body)}</main>\n"
        f"<footer>Post-incident report generated by irflow from the workflow's own record "
        f"(phase {_e(state.phase)}).</footer></body></html>\n"
    )
