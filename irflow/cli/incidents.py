"""Commands about incidents: hand findings in, list and show incidents, decide, follow one live."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, WorkflowUpdateFailedError

from irflow.cli.common import (
    AS_JSON,
    BY,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    IDENT,
    app,
    console,
    incident_handle,
    incident_state,
    print_json,
    run,
)
from irflow.models.incident import DecisionOutcome, Eradication, IncidentState

# --- ingest ---


@app.command()
def ingest(
    files: Annotated[
        list[str], typer.Argument(help="finding files (JSON, JSON lines, GetFindings output); - for stdin")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    verify: Annotated[bool, typer.Option(help="check the named resource exists before starting")] = True,
) -> None:
    """Start (or join) incidents from finding files."""
    from irflow.ingest import ingest_main

    raise typer.Exit(asyncio.run(ingest_main(files, as_json=as_json, verify=verify)))


@app.command()
def listen(
    queue: Annotated[
        list[str] | None, typer.Option(help="SQS queue URL (repeatable); default IRFLOW_QUEUE_URLS")
    ] = None,
    wait_seconds: Annotated[int, typer.Option(help="SQS long-poll wait")] = 20,
) -> None:
    """Run the finding listener: SQS queues to incidents, until SIGTERM or Ctrl-C."""
    from irflow.listen import listen_main

    raise typer.Exit(asyncio.run(listen_main(queue, wait_seconds)))


# --- list / show ---


_AGE = re.compile(r"^(\d+)([smhd])$")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _list_query(
    status: str | None = None,
    open_only: bool = False,
    phase: str | None = None,
    severity: str | None = None,
    finding_type: str | None = None,
    resource: str | None = None,
    age: str | None = None,
    now: datetime | None = None,
) -> str:
    """A Temporal visibility query over irflow's search attributes."""
    clauses = ["WorkflowType = 'IncidentWorkflow'"]
    if open_only:
        clauses.append("ExecutionStatus = 'Running'")
    for attribute, value in (
        ("IrflowStatus", status),
        ("IrflowPhase", phase),
        ("IrflowSeverity", severity.upper() if severity else None),
        ("IrflowResourceId", resource),
    ):
        if value:
            clauses.append(f"{attribute} = {_quoted(value)}")
    if finding_type:
        # Keyword attributes take exact matches and prefixes: "Recon:EC2/*" lists the whole family.
        if finding_type.endswith("*"):
            clauses.append(f"IrflowFindingType STARTS_WITH {_quoted(finding_type[:-1])}")
        else:
            clauses.append(f"IrflowFindingType = {_quoted(finding_type)}")
    if age:
        match = _AGE.match(age)
        if not match:
            raise typer.BadParameter(f"--age {age!r}: use a number and s, m, h or d (e.g. 30m, 24h, 7d)")
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        since = (now or datetime.now(UTC)) - timedelta(**{unit: int(match.group(1))})
        clauses.append(f"StartTime >= '{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'")
    return " AND ".join(clauses)


@app.command("list")
def list_incidents(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    status: Annotated[str | None, typer.Option(help="only incidents with this irflow status")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only running incidents")] = False,
    phase: Annotated[str | None, typer.Option(help="only incidents in this phase")] = None,
    severity: Annotated[str | None, typer.Option(help="only this severity (LOW … CRITICAL)")] = None,
    finding_type: Annotated[str | None, typer.Option("--type", help="finding type; trailing * = prefix")] = None,
    resource: Annotated[str | None, typer.Option(help="only incidents about this resource id")] = None,
    age: Annotated[str | None, typer.Option(help="opened within this long: 30m, 24h, 7d")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
) -> None:
    """List incidents, newest first (Temporal visibility over irflow's search attributes)."""
    query = _list_query(status, open_only, phase, severity, finding_type, resource, age)

    async def work(client: Client) -> list[dict[str, Any]]:
        rows = []
        async for execution in client.list_workflows(query, limit=limit):
            attributes = {k.name: v for k, v in execution.typed_search_attributes}  # type: ignore[attr-defined]
            memo = await execution.memo()
            rows.append(
                {
                    "workflow_id": execution.id,
                    "run_id": execution.run_id,
                    "incident_id": memo.get("incident_id"),
                    "status": attributes.get("IrflowStatus"),
                    "phase": attributes.get("IrflowPhase"),
                    "severity": attributes.get("IrflowSeverity"),
                    "finding_type": attributes.get("IrflowFindingType"),
                    "resource_id": attributes.get("IrflowResourceId"),
                    "started": execution.start_time,
                    "workflow_status": execution.status.name if execution.status else None,
                }
            )
        return rows

    rows = run(work)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} incident(s)")
    for column in ("incident", "status", "phase", "severity", "finding type", "resource", "started"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["incident_id"] or r["workflow_id"],
            r["status"] or "",
            r["phase"] or "",
            r["severity"] or "",
            r["finding_type"] or "",
            r["resource_id"] or "",
            r["started"].strftime("%Y-%m-%d %H:%M:%S") if r["started"] else "",
        )
    console.print(table)


@app.command()
def show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="incident id or workflow id")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show an incident: state, pending decision, actions, evidence."""
    state = run(lambda client: incident_state(client, ident))
    if as_json:
        print_json(state.model_dump(mode="json"))
        return
    console.print(f"[bold]{state.incident_id}[/bold]  {state.status} · {state.phase} · {state.severity}")
    console.print(f"finding: {state.finding.type} ({state.finding.id})", markup=False)
    console.print(f"resource: {state.finding.resource.resource_type} {state.resource_id}", markup=False)
    if state.pending_decision:
        p = state.pending_decision
        console.print(f"[yellow]waiting for a decision[/yellow] since {p.since:%Y-%m-%d %H:%M:%S}: {p.question}")
    if state.failure_reason:
        console.print(f"[red]failure:[/red] {state.failure_reason}")
    timeline = Table(title="timeline")
    for column in ("time (UTC)", "phase", "event"):
        timeline.add_column(column)
    for entry in state.timeline:
        timeline.add_row(f"{entry.at:%H:%M:%S}", str(entry.phase), Text(entry.event))  # no markup
    console.print(timeline)
    table = Table(title="actions")
    for column in ("action", "phase", "status", "result"):
        table.add_column(column)
    for a in state.actions + state.compensations:
        table.add_row(a.name, str(a.phase), str(a.status), Text((a.error or json.dumps(a.result, default=str))[:100]))
    console.print(table)
    if state.evidence:
        evidence = Table(title="evidence")
        for column in ("key", "sha256", "version"):
            evidence.add_column(column)
        for e in state.evidence:
            evidence.add_row(e.key, e.sha256[:16] + "…", e.version_id or "")
        console.print(evidence)


@app.command()
def report(
    ident: Annotated[str, typer.Argument(metavar="ID", help="incident id or workflow id")],
    as_json: Annotated[bool, typer.Option("--json", help="the JSON report instead of Markdown")] = False,
    as_html: Annotated[
        bool, typer.Option("--html", help="the self-contained HTML page instead of Markdown (redirect to a file)")
    ] = False,
) -> None:
    """Print the post-incident report (built from the incident's own record)."""
    from activities.report import render_html, render_markdown, report_document

    if as_json and as_html:
        raise typer.BadParameter("choose one of --json and --html")
    state = run(lambda client: incident_state(client, ident))
    if as_json:
        print_json(report_document(state))
    elif as_html:
        sys.stdout.write(render_html(state))
    else:
        sys.stdout.write(render_markdown(state))


# --- decisions: Temporal updates, so the answer (accepted, or why not) comes back ---


async def _decide(client: Client, ident: str, kind: str, payload: dict[str, Any]) -> DecisionOutcome:
    handle = await incident_handle(client, ident)
    try:
        return await handle.execute_update(kind, payload, result_type=DecisionOutcome)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = getattr(cause, "message", None) or str(cause or error)
        return DecisionOutcome(accepted=False, kind=kind, message=message)


def _report_decision(outcome: DecisionOutcome, as_json: bool) -> None:
    if as_json:
        print_json(outcome.model_dump(mode="json"))
    elif outcome.accepted:
        console.print(outcome.message, markup=False)
    else:
        sys.stderr.write(f"refused: {outcome.message}\n")
    if not outcome.accepted:
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def approve(
    ident: IDENT,
    by: BY,
    comment: Annotated[str, typer.Option(help="why")] = "",
    eradicate: Annotated[Eradication | None, typer.Option(help="stop (keep) or terminate the instance")] = None,
    as_json: AS_JSON = False,
) -> None:
    """Approve the pending decision (containment, or eradication with --eradicate). CRITICAL incidents need
    two different approvers before eradication."""
    payload: dict[str, Any] = {"by": by, "comment": comment}
    if eradicate:
        payload["eradication"] = eradicate.value
    _report_decision(run(lambda client: _decide(client, ident, "approve", payload)), as_json)


@app.command()
def reject(
    ident: IDENT,
    by: BY,
    reason: Annotated[str, typer.Option(help="why this is a false positive")],
    as_json: AS_JSON = False,
) -> None:
    """Reject the finding as a false positive: containment is undone."""
    _report_decision(run(lambda client: _decide(client, ident, "reject", {"by": by, "reason": reason})), as_json)


@app.command()
def release(
    ident: IDENT,
    by: BY,
    comment: Annotated[str, typer.Option(help="what recovery was done")],
    as_json: AS_JSON = False,
) -> None:
    """End containment after recovery: the finding was real, the resource is clean; containment is lifted."""
    _report_decision(run(lambda client: _decide(client, ident, "release", {"by": by, "comment": comment})), as_json)


@app.command()
def note(
    ident: IDENT,
    by: BY,
    text: Annotated[str, typer.Argument(help="the note")],
    as_json: AS_JSON = False,
) -> None:
    """Add a note to the incident's record (and its report)."""
    _report_decision(run(lambda client: _decide(client, ident, "note", {"by": by, "text": text})), as_json)


@app.command()
def watch(
    ident: IDENT,
    interval: Annotated[float, typer.Option(help="seconds between looks")] = 1.0,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds (0: never)")] = 0,
    as_json: AS_JSON = False,
) -> None:
    """Follow an incident live until it needs you (a pending decision) or ends. Exit 0 when it needs you
    or ended, 4 on --timeout."""

    async def work(client: Client) -> IncidentState | None:
        handle = await incident_handle(client, ident)
        shown = 0
        deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        while True:
            state = await handle.query("current_state", result_type=IncidentState)
            for entry in state.timeline[shown:]:
                if as_json:
                    sys.stdout.write(json.dumps(entry.model_dump(mode="json")) + "\n")
                else:
                    console.print(f"{entry.at:%H:%M:%S} {entry.phase:<22} {entry.event}", markup=False)
            sys.stdout.flush()
            shown = len(state.timeline)
            if state.pending_decision or state.status.is_final:
                return state
            if deadline and asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(interval)

    state = run(work)
    if state is None:
        sys.stderr.write("watch: timed out\n")
        raise typer.Exit(EXIT_TIMEOUT)
    summary = {
        "incident_id": state.incident_id,
        "status": str(state.status),
        "phase": str(state.phase),
        "needs_you": state.pending_decision.model_dump(mode="json") if state.pending_decision else None,
    }
    if as_json:  # JSON lines: the timeline entries, then this summary
        sys.stdout.write(json.dumps(summary) + "\n")
    elif state.pending_decision:
        console.print(f"needs you: {state.pending_decision.question}", markup=False)
    else:
        console.print(f"ended: {state.status}", markup=False)
