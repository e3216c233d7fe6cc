"""The `irflow` command line for analysts and scripts.

Exit codes: 0 done; 1 bad input or the incident refused the request; 2 Temporal unreachable;
3 no such incident.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from irflow.temporal_client import TemporalUnreachable, connect, exit_now
from models.incident import Decision, Eradication, IncidentState

app = typer.Typer(help="irflow: automated incident response for AWS, on Temporal.", no_args_is_help=True)
console = Console()

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_NOT_FOUND = 1, 2, 3
T = TypeVar("T")

_INCIDENT_SUFFIX = re.compile(r"-(\d{8}T\d{6}Z)$")


class NotFound(Exception):
    pass


def _run(work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            client = await connect()
        except TemporalUnreachable as error:
            _fail(str(error), EXIT_UNREACHABLE)
        return await work(client)

    try:
        return asyncio.run(main())
    except NotFound as missing:
        _fail(str(missing), EXIT_NOT_FOUND)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            _fail(f"not found: {error.message}", EXIT_NOT_FOUND)
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            _fail(f"cannot reach Temporal: {' '.join(error.message.split())[:160]}", EXIT_UNREACHABLE)
        raise


def _fail(message: str, code: int) -> NoReturn:
    """One line on standard error (never wrapped: scripts grep it), then the exit code."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


async def _handle(client: Client, ident: str) -> WorkflowHandle:
    """Accept a workflow id (the incident key) or an incident id (key plus opening time)."""
    match = _INCIDENT_SUFFIX.search(ident)
    if match:
        key = ident[: match.start()]
        async for execution in client.list_workflows(f"WorkflowId = '{key}'"):
            memo = await execution.memo()
            if memo.get("incident_id") == ident:
                return client.get_workflow_handle(key, run_id=execution.run_id)
        raise NotFound(f"no incident {ident}")
    handle = client.get_workflow_handle(ident)
    try:
        await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no incident {ident}") from None
        raise
    return handle


async def _state(client: Client, ident: str) -> IncidentState:
    handle = await _handle(client, ident)
    return await handle.query("current_state", result_type=IncidentState)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


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


def _list_query(status: str | None, open_only: bool) -> str:
    clauses = ["WorkflowType = 'IncidentWorkflow'"]
    if open_only:
        clauses.append("ExecutionStatus = 'Running'")
    if status:
        clauses.append(f"IrflowStatus = '{status}'")
    return " AND ".join(clauses)


@app.command("list")
def list_incidents(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    status: Annotated[str | None, typer.Option(help="only incidents with this irflow status")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only running incidents")] = False,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
) -> None:
    """List incidents, newest first."""

    async def work(client: Client) -> list[dict[str, Any]]:
        rows = []
        async for execution in client.list_workflows(_list_query(status, open_only), limit=limit):
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

    rows = _run(work)
    if as_json:
        _print_json(rows)
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
    state = _run(lambda client: _state(client, ident))
    if as_json:
        _print_json(state.model_dump(mode="json"))
        return
    console.print(f"[bold]{state.incident_id}[/bold]  {state.status} · {state.phase} · {state.severity}")
    console.print(f"finding: {state.finding.type} ({state.finding.id})", markup=False)
    console.print(f"resource: {state.finding.resource.resource_type} {state.resource_id}", markup=False)
    if state.pending_decision:
        p = state.pending_decision
        console.print(f"[yellow]waiting for a decision[/yellow] since {p.since:%Y-%m-%d %H:%M:%S}: {p.question}")
    if state.failure_reason:
        console.print(f"[red]failure:[/red] {state.failure_reason}")
    table = Table(title="actions")
    for column in ("action", "phase", "status", "result"):
        table.add_column(column)
    for a in state.actions + state.compensations:
        table.add_row(a.name, str(a.phase), str(a.status), (a.error or json.dumps(a.result, default=str))[:100])
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
) -> None:
    """Print the post-incident report (built from the incident's own record)."""
    from activities.report import render_markdown, report_document

    state = _run(lambda client: _state(client, ident))
    if as_json:
        _print_json(report_document(state))
    else:
        sys.stdout.write(render_markdown(state))


# --- decisions ---


async def _decide(client: Client, ident: str, signal: str, payload: dict[str, Any]) -> Decision | None:
    handle = await _handle(client, ident)
    sent_at = datetime.now(UTC) - timedelta(seconds=1)
    before = len((await handle.query("current_state", result_type=IncidentState)).decisions)
    await handle.signal(signal, payload)
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        state = await handle.query("current_state", result_type=IncidentState)
        fresh = [d for d in state.decisions[before:] if d.by == payload["by"] and d.at >= sent_at]
        if fresh:
            return fresh[-1]
        await asyncio.sleep(0.2)
    return None


def _report_decision(decision: Decision | None, as_json: bool) -> None:
    if as_json:
        _print_json(decision.model_dump(mode="json") if decision else {"accepted": None, "recorded": False})
    elif decision is None:
        console.print("signal delivered; the incident has not recorded it yet (is a worker running?)")
    elif decision.accepted:
        console.print(f"{decision.kind} accepted, recorded for {decision.by} at {decision.at:%Y-%m-%d %H:%M:%S}")
    else:
        sys.stderr.write(f"refused: {decision.refusal}\n")
    if decision is not None and not decision.accepted:
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def approve(
    ident: Annotated[str, typer.Argument(metavar="ID", help="incident id or workflow id")],
    by: Annotated[str, typer.Option("--as", help="who approves")],
    comment: Annotated[str, typer.Option(help="why")] = "",
    eradicate: Annotated[Eradication | None, typer.Option(help="stop (keep) or terminate the instance")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Approve the pending decision (containment, or eradication with --eradicate)."""
    payload: dict[str, Any] = {"by": by, "comment": comment}
    if eradicate:
        payload["eradication"] = eradicate.value
    _report_decision(_run(lambda client: _decide(client, ident, "approve", payload)), as_json)


@app.command()
def reject(
    ident: Annotated[str, typer.Argument(metavar="ID", help="incident id or workflow id")],
    by: Annotated[str, typer.Option("--as", help="who rejects")],
    reason: Annotated[str, typer.Option(help="why this is a false positive")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Reject the finding as a false positive: containment is undone."""
    _report_decision(_run(lambda client: _decide(client, ident, "reject", {"by": by, "reason": reason})), as_json)


# --- operations ---


@app.command()
def policy(
    member: Annotated[bool, typer.Option("--member", help="the responder role's policy in member accounts")] = False,
    member_template: Annotated[
        bool, typer.Option("--member-template", help="CloudFormation for the responder role in member accounts")
    ] = False,
) -> None:
    """Print least-privilege IAM, generated from the activities' declarations: the worker's policy (default),
    the member accounts' responder policy, or the responder role's CloudFormation template."""
    from irflow.iam_policy import member_policy, member_role_template, worker_policy

    _print_json(member_role_template() if member_template else member_policy() if member else worker_policy())


@app.command("setup-namespace")
def setup_namespace() -> None:
    """Register irflow's search attributes in the Temporal namespace (idempotent)."""
    from irflow.temporal_client import ensure_search_attributes

    added = _run(ensure_search_attributes)
    console.print(f"search attributes added: {', '.join(added)}" if added else "search attributes already present")


def main() -> NoReturn:
    """Console entry point: run the command, then leave without interpreter teardown (see exit_now)."""
    try:
        app()  # typer reports usage errors itself and always ends with SystemExit
        code = 0
    except SystemExit as finished:
        code = finished.code if isinstance(finished.code, int) else (0 if finished.code is None else 1)
    exit_now(code)


if __name__ == "__main__":
    main()
