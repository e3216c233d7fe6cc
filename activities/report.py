"""The post-incident report, built only from the workflow's own record, stored beside the evidence.

Three renderings of the same sections (summary, findings, an attack sequence's child incidents, metrics,
analysis, timeline, actions, compensation, decisions, escalations, evidence, snapshots, memory capture): the
JSON document for tools and Markdown for people and terminals, here; the self-contained HTML page in
`report_html`. The `write_report` activity stores all three. Nothing here reads a clock: the report of a
record is always the same report.
"""

from __future__ import annotations

from typing import Any

from activities.aws import aws_activity
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from activities.report_html import HTML_CONTENT_TYPE, render_html
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
from irflow.models.evidence import EvidenceObject
from irflow.models.incident import ActionRecord, Decision, IncidentState
from irflow.models.sequence import ChildIncident


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
        "findings_absorbed": state.absorbed_count(),
        "findings_summary": state.findings_summary.model_dump(mode="json") if state.findings_summary else None,
        "finding_deliveries": state.finding_deliveries,
        "findings": _findings(state),
        "related_incidents": state.related_incidents,
        "children": [c.model_dump(mode="json") for c in state.children],
        "plan_reasons": state.plan_reasons,
        "milestones": {k: v.isoformat() if v else None for k, v in state.milestones().items()},
        "metrics": state.metrics(),
        "timeline": [t.model_dump(mode="json") for t in state.timeline],
        "actions": [a.model_dump(mode="json") for a in state.actions],
        "compensations": [c.model_dump(mode="json") for c in state.compensations],
        "decisions": [d.model_dump(mode="json") for d in state.decisions],
        "escalations": [e.isoformat() for e in state.escalations],
        "drifts": [d.model_dump(mode="json") for d in state.drifts],
        "containment_checks": state.containment_checks,
        "last_verified_at": state.last_verified_at.isoformat() if state.last_verified_at else None,
        "eradication": state.eradication,
        "evidence": [e.model_dump(mode="json") for e in state.evidence],
        "snapshots": [s.model_dump(mode="json") for s in state.snapshots],
        "memory_capture": state.memory_capture.model_dump(mode="json") if state.memory_capture else None,
        "failure_reason": state.failure_reason,
        "prior_state": state.context.model_dump(mode="json") if state.context else state.resource_context,
    }


# --- Markdown ---


def _verdict(d: Decision) -> str:
    return "accepted" if d.accepted else f"refused ({d.refusal})"


def _retention(e: EvidenceObject) -> str:
    return f"{time_text(e.retain_until)} ({e.lock_mode or 'no lock'})"


def _markdown_actions(title: str, column: str, records: list[ActionRecord]) -> list[str]:
    """A numbered Markdown table of actions (or undos) with their phase, status, times and outcome."""
    return [
        "",
        f"## {title}",
        "",
        f"| # | {column} | phase | status | started (UTC) | finished (UTC) | result |",
        "|---|---|---|---|---|---|---|",
    ] + [
        f"| {i} | {r.name} | {r.phase} | {r.status} | {time_text(r.started_at)} | {time_text(r.finished_at)} | "
        f"{_cell(outcome_text(r))} |"
        for i, r in enumerate(records, 1)
    ]


def _cell(value: Any) -> str:
    """Text made safe for a Markdown table cell: pipes and line breaks would break the table, and a
    backslash before `<` keeps a renderer from taking attacker-written text as HTML."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "\\<")


def _markdown_children(children: list[ChildIncident]) -> list[str]:
    """An attack sequence's incidents, one per resource it names: how each stood when the report was written."""
    return [
        "",
        "## Incidents of the resources the sequence names",
        "",
        "| incident | resource | playbook | status | time to contain | decisions |",
        "|---|---|---|---|---|---|",
    ] + [
        f"| {_cell(c.incident_id)}{' (joined)' if c.joined else ''} | "
        f"{_cell(c.resource_type)} `{_cell(c.resource_id)}` | {_cell(c.playbook)} | {_cell(c.status or 'unknown')} | "
        f"{duration_text(c.time_to_contain_seconds)} | "
        f"{_cell('; '.join(c.decisions) or '—')} |"
        for c in children
    ]


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
        f"- **Findings absorbed:** {state.absorbed_count()} ({state.finding_deliveries} deliveries)",
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
        f"| {time_text(x.observed_at)} | {_cell(x.id)} | `{_cell(x.type)}` | {x.severity} ({x.severity_score}) | "
        f"{x.count} |"
        for x in state.findings_absorbed or [f]
    ]
    summary = state.findings_summary
    if summary and summary.absorbed > len(state.findings_absorbed):
        ids = len(summary.ids) + summary.ids_omitted
        lines += [
            "",
            f"{len(state.findings_absorbed)} of {summary.absorbed} findings listed (the first, the latest); all "
            f"counted: {ids} distinct id(s), seen from {time_text(summary.first_seen)} to "
            f"{time_text(summary.last_seen)}, over {summary.runs} run(s) of the incident's workflow.",
        ]
    if state.children:
        lines += _markdown_children(state.children)
    lines += ["", "## Metrics", "", "| milestone | time (UTC) |", "|---|---|"]
    lines += [f"| {MILESTONE_LABELS[name]} | {time_text(at)} |" for name, at in milestones.items()]
    lines += ["", "| measure | seconds | duration |", "|---|---|---|"]
    lines += [
        f"| {name} | {'—' if value is None else value} | {duration_text(value)} |" for name, value in metrics.items()
    ]
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
    lines += [f"- {at.isoformat()} — escalated: {_cell(why)}" for at, why in escalation_texts(state)]
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
        lines += [
            "",
            "### Snapshots",
            "",
            "| snapshot | volume | state | started (UTC) | SHA-256 of its written blocks | forensic copy |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s.snapshot_id} | {s.volume_id} | {s.state} | {time_text(s.started_at)} | {digest_text(s)} | "
            f"{_cell(copy_text(s))} |"
            for s in state.snapshots
        ]
    if state.memory_capture:
        m = state.memory_capture
        lines += ["", "### Memory capture", ""]
        lines += [f"- **{label}**: {_cell(text)}" for label, text in memory_facts(m) if text]
    return "\n".join(lines) + "\n"


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
