"""The post-incident report, built only from the workflow's own record, stored beside the evidence."""

from __future__ import annotations

from typing import Any

from activities.aws import aws_activity
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from models.incident import EvidenceObject, IncidentState


def report_document(state: IncidentState) -> dict[str, Any]:
    return {
        "incident_id": state.incident_id,
        "playbook": state.playbook,
        "status": state.status,
        "severity": state.severity,
        "resource_id": state.resource_id,
        "finding": state.finding.model_dump(mode="json"),
        "findings_absorbed": len(state.findings_absorbed),
        "plan_reasons": state.plan_reasons,
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


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(state: IncidentState) -> str:
    f = state.finding
    metrics = state.metrics()
    lines = [
        f"# Incident {state.incident_id}",
        "",
        f"- **Status:** {state.status}",
        f"- **Severity:** {state.severity} (GuardDuty score {f.severity_score})",
        f"- **Finding:** `{f.type}` ({f.id}) — {f.title}",
        f"- **Resource:** {f.resource.resource_type} `{state.resource_id}` in {f.account_id}/{f.region}",
        f"- **Playbook:** {state.playbook}",
    ]
    if state.failure_reason:
        lines.append(f"- **Failure:** {state.failure_reason}")
    if state.eradication:
        lines.append(f"- **Eradication:** {state.eradication}")
    lines += ["", "## Metrics", "", "| measure | seconds |", "|---|---|"]
    lines += [f"| {name} | {'—' if value is None else value} |" for name, value in metrics.items()]
    if state.plan_reasons:
        lines += ["", "## Analysis", ""] + [f"- {r}" for r in state.plan_reasons]
    lines += ["", "## Timeline", "", "| time (UTC) | phase | event |", "|---|---|---|"]
    lines += [f"| {t.at.isoformat()} | {t.phase} | {_cell(t.event)} |" for t in state.timeline]
    lines += ["", "## Actions", "", "| action | phase | status | result |", "|---|---|---|---|"]
    lines += [f"| {a.name} | {a.phase} | {a.status} | {_cell(a.error or a.result)} |" for a in state.actions]
    if state.compensations:
        lines += [
            "",
            "## Compensation (undone in reverse order)",
            "",
            "| undo | status | result |",
            "|---|---|---|",
        ]
        lines += [f"| {c.name} | {c.status} | {_cell(c.error or c.result)} |" for c in state.compensations]
    lines += ["", "## Decisions", ""]
    if not state.decisions:
        lines.append("No analyst decision was recorded.")
    for d in state.decisions:
        verdict = "accepted" if d.accepted else f"refused ({d.refusal})"
        extra = f", eradication: {d.eradication}" if d.eradication else ""
        stage = f" ({d.stage})" if d.stage else ""
        lines.append(
            f"- {d.at.isoformat()} — **{d.kind}**{stage} by `{d.by}` via {d.via}, {verdict}{extra}: "
            f"{_cell(d.comment) or '—'}"
        )
    for at in state.escalations:
        lines.append(f"- {at.isoformat()} — escalated: no decision before the deadline; containment kept")
    lines += [
        "",
        "## Evidence",
        "",
        "| object | SHA-256 | size | version | retained until |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| s3://{e.bucket}/{e.key} | `{e.sha256}` | {e.size} | {e.version_id or '—'} | "
        f"{e.retain_until.isoformat() if e.retain_until else '—'} ({e.lock_mode or 'no lock'}) |"
        for e in state.evidence
    ]
    if state.snapshots:
        lines += ["", "| snapshot | volume | state |", "|---|---|---|"]
        lines += [f"| {s.snapshot_id} | {s.volume_id} | {s.state} |" for s in state.snapshots]
    if state.memory_capture:
        m = state.memory_capture
        lines += [
            "",
            f"Memory acquisition: SSM command `{m.command_id or '—'}` ended **{m.status}** {m.detail}",
        ]
    return "\n".join(lines) + "\n"


@aws_activity(*EVIDENCE_WRITE_ACTIONS)
def write_report(state: IncidentState) -> list[EvidenceObject]:
    """Markdown for people, JSON for tools; both locked like every other exhibit."""
    markdown = render_markdown(state).encode()
    document = to_json_bytes(report_document(state))
    return [
        store_evidence(state.incident_id, "report/report.md", markdown, "report", "text/markdown", False),
        store_evidence(state.incident_id, "report/report.json", document, "report", "application/json", False),
    ]
