"""The post-incident report, built only from the workflow's own record, stored beside the evidence.

Three renderings of the same sections (summary, findings, metrics, analysis, timeline, actions,
compensation, decisions, escalations, evidence, snapshots, memory capture): JSON for tools, Markdown
for people and terminals, and one self-contained HTML page (inline CSS, no scripts, no external
resources, every value escaped: finding titles and analyst comments are attacker- and analyst-written).
Nothing here reads a clock: the report of a record is always the same report.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any

from activities.aws import aws_activity
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from irflow.models.incident import ActionRecord, Decision, EvidenceObject, IncidentState

HTML_CONTENT_TYPE = "text/html; charset=utf-8"

MILESTONE_LABELS = {
    "first_observed": "activity first observed (finding's first sighting)",
    "detected": "detected by irflow (finding received)",
    "first_decision": "first decision",
    "contained": "contained",
    "decided": "final decision",
    "recovered": "eradicated / recovered",
    "closed": "closed",
}


def _findings(state: IncidentState) -> list[dict[str, Any]]:
    return [
        {
            "id": f.id,
            "type": f.type,
            "title": f.title,
            "severity": f.severity,
            "severity_score": f.severity_score,
            "first_seen": f.first_seen.isoformat() if f.first_seen else None,
            "last_seen": f.last_seen.isoformat() if f.last_seen else None,
            "observed_at": f.observed_at.isoformat(),
            "count": f.count,
            "raw_sha256": f.raw_sha256,
        }
        for f in (state.findings_absorbed or [state.finding])
    ]


def report_document(state: IncidentState) -> dict[str, Any]:
    return {
        "incident_id": state.incident_id,
        "playbook": state.playbook,
        "status": state.status,
        "phase": state.phase,
        "severity": state.severity,
        "resource_id": state.resource_id,
        "finding": state.finding.model_dump(mode="json"),
        "findings_absorbed": len(state.findings_absorbed),
        "finding_deliveries": state.finding_deliveries,
        "findings": _findings(state),
        "related_incidents": state.related_incidents,
        "plan_reasons": state.plan_reasons,
        "milestones": {k: v.isoformat() if v else None for k, v in state.milestones().items()},
        "metrics": state.metrics(),
        "timeline": [t.model_dump(mode="json") for t in state.timeline],
        "actions": [a.model_dump(mode="json") for a in state.actions],
        "compensations": [c.model_dump(mode="json") for c in state.compensations],
        "decisions": [d.model_dump(mode="json") for d in state.decisions],
        "escalations": [e.isoformat() for e in state.escalations],
        "eradication": state.eradication,
        "evidence": [e.model_dump(mode="json") for e in state.evidence],
        "snapshots": [s.model_dump(mode="json") for s in state.snapshots],
        "memory_capture": state.memory_capture.model_dump(mode="json") if state.memory_capture else None,
        "failure_reason": state.failure_reason,
        "prior_state": state.context.model_dump(mode="json") if state.context else state.resource_context,
    }


# --- shared wording ---


def _time(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "—"


def _duration(seconds: float | None) -> str:
    """A human reading of a number of seconds: 42.5s, 6m 30s, 4h 0m, 2d 3h."""
    if seconds is None:
        return "—"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:g}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    return f"{sign}{minutes}m {secs}s"


def _outcome(action: ActionRecord) -> str:
    return action.error or json.dumps(action.result, sort_keys=True, default=str)


def _verdict(d: Decision) -> str:
    return "accepted" if d.accepted else f"refused ({d.refusal})"


def _retention(e: EvidenceObject) -> str:
    return f"{_time(e.retain_until)} ({e.lock_mode or 'no lock'})"


# --- Markdown ---


def _markdown_actions(title: str, column: str, records: list[ActionRecord]) -> list[str]:
    """A numbered Markdown table of actions (or undos) with their phase, status, times and outcome."""
    return [
        "",
        f"## {title}",
        "",
        f"| # | {column} | phase | status | started (UTC) | finished (UTC) | result |",
        "|---|---|---|---|---|---|---|",
    ] + [
        f"| {i} | {r.name} | {r.phase} | {r.status} | {_time(r.started_at)} | {_time(r.finished_at)} | "
        f"{_cell(_outcome(r))} |"
        for i, r in enumerate(records, 1)
    ]


def _cell(value: Any) -> str:
    """Text made safe for a Markdown table cell: pipes and line breaks would break the table, and a
    backslash before `<` keeps a renderer from taking attacker-written text as HTML."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "\\<")


def render_markdown(state: IncidentState) -> str:
    f = state.finding
    metrics = state.metrics()
    milestones = state.milestones()
    lines = [
        f"# Incident {state.incident_id}",
        "",
        f"- **Status:** {state.status}",
        f"- **Severity:** {state.severity} (GuardDuty score {f.severity_score})",
        f"- **Finding:** `{f.type}` ({f.id}) — {_cell(f.title)}",
        f"- **Resource:** {f.resource.resource_type} `{state.resource_id}` in {f.account_id}/{f.region}",
        f"- **Playbook:** {state.playbook}",
        f"- **Findings absorbed:** {len(state.findings_absorbed)} ({state.finding_deliveries} deliveries)",
    ]
    if state.related_incidents:
        lines.append(f"- **Related incidents:** {', '.join(state.related_incidents)}")
    if state.failure_reason:
        lines.append(f"- **Failure:** {_cell(state.failure_reason)}")
    if state.eradication:
        lines.append(f"- **Eradication:** {state.eradication}")
    lines += [
        "",
        "## Findings",
        "",
        "| first seen (UTC) | finding | type | severity | count |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {_time(x.observed_at)} | {_cell(x.id)} | `{_cell(x.type)}` | {x.severity} ({x.severity_score}) | "
        f"{x.count} |"
        for x in state.findings_absorbed or [f]
    ]
    lines += ["", "## Metrics", "", "| milestone | time (UTC) |", "|---|---|"]
    lines += [f"| {MILESTONE_LABELS[name]} | {_time(at)} |" for name, at in milestones.items()]
    lines += ["", "| measure | seconds | duration |", "|---|---|---|"]
    lines += [f"| {name} | {'—' if value is None else value} | {_duration(value)} |" for name, value in metrics.items()]
    if state.plan_reasons:
        lines += ["", "## Analysis", ""] + [f"- {_cell(r)}" for r in state.plan_reasons]
    lines += ["", "## Timeline", "", "| time (UTC) | phase | event |", "|---|---|---|"]
    lines += [f"| {t.at.isoformat()} | {t.phase} | {_cell(t.event)} |" for t in state.timeline]
    lines += _markdown_actions("Actions", "action", state.actions)
    if state.compensations:
        lines += _markdown_actions("Compensation (undone in reverse order)", "undo", state.compensations)
    lines += ["", "## Decisions", ""]
    if not state.decisions:
        lines.append("No analyst decision was recorded.")
    for d in state.decisions:
        extra = f", eradication: {d.eradication}" if d.eradication else ""
        stage = f" ({d.stage})" if d.stage else ""
        lines.append(
            f"- {d.at.isoformat()} — **{d.kind}**{stage} by `{_cell(d.by)}` via {d.via}, {_cell(_verdict(d))}{extra}: "
            f"{_cell(d.comment) or '—'}"
        )
    for at in state.escalations:
        lines.append(f"- {at.isoformat()} — escalated: no decision before the deadline; containment kept")
    lines += [
        "",
        "## Evidence",
        "",
        "| kind | object | SHA-256 | size | version | retained until |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(e.kind)} | s3://{e.bucket}/{_cell(e.key)} | `{e.sha256}` | {e.size} | {e.version_id or '—'} | "
        f"{_retention(e)} |"
        for e in state.evidence
    ]
    if state.snapshots:
        lines += ["", "### Snapshots", "", "| snapshot | volume | state | started (UTC) |", "|---|---|---|---|"]
        lines += [f"| {s.snapshot_id} | {s.volume_id} | {s.state} | {_time(s.started_at)} |" for s in state.snapshots]
    if state.memory_capture:
        m = state.memory_capture
        lines += [
            "",
            "### Memory capture",
            "",
            f"Memory acquisition: SSM command `{m.command_id or '—'}` (document {m.document}) ended **{m.status}** "
            f"{_cell(m.detail)}",
        ]
    return "\n".join(lines) + "\n"


# --- HTML ---

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
    return _When(_e(_time(moment)))


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
            _Markup(f'<span class="error">{_e(a.error)}</span>') if a.error else _code(_outcome(a)),
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
        [[_code(name), _num("—" if v is None else v), _num(_duration(v))] for name, v in metrics.items()],
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
        [[_when(at), "no decision before the deadline: escalated, containment kept"] for at in state.escalations],
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
        ["snapshot", "volume", "state", "started (UTC)"],
        [[_code(s.snapshot_id), _code(s.volume_id), s.state, _when(s.started_at)] for s in state.snapshots],
        "No snapshot was taken.",
    )
    m = state.memory_capture
    memory = (
        _definitions(
            [
                ("SSM command", _code(m.command_id or "—")),
                ("document", m.document),
                ("status", _badge(m.status)),
                ("detail", m.detail or None),
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


@aws_activity(*EVIDENCE_WRITE_ACTIONS)
def write_report(state: IncidentState) -> list[EvidenceObject]:
    """Markdown for people, JSON for tools, one HTML page to hand around; all locked like every other exhibit."""
    markdown = render_markdown(state).encode()
    document = to_json_bytes(report_document(state))
    page = render_html(state).encode()
    return [
        store_evidence(state.incident_id, "report/report.md", markdown, "report", "text/markdown", False),
        store_evidence(state.incident_id, "report/report.json", document, "report", "application/json", False),
        store_evidence(state.incident_id, "report/report.html", page, "report", HTML_CONTENT_TYPE, False),
    ]
