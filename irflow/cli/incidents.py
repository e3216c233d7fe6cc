"""Commands about incidents: hand findings in, list and show incidents, decide, follow one live."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, WorkflowUpdateFailedError

from irflow.cli.common import (
    AS_JSON,
    BY,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    IDENT,
    PROFILE,
    app,
    console,
    decision_proof,
    find_incident,
    incident_handle,
    incident_state,
    print_json,
    run,
    short_id,
)
from irflow.models.incident import (
    DECISION_REQUESTS,
    DecisionKind,
    DecisionOutcome,
    Eradication,
    IncidentState,
    Phase,
    TimelineEntry,
)
from irflow.visibility import incident_query, incident_rows, parse_window

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


@app.command("list")
def list_incidents(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    status: Annotated[str | None, typer.Option(help="only incidents with this irflow status")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only running incidents")] = False,
    phase: Annotated[str | None, typer.Option(help="only incidents in this phase")] = None,
    severity: Annotated[str | None, typer.Option(help="only this severity (LOW … CRITICAL)")] = None,
    finding_type: Annotated[str | None, typer.Option("--type", help="finding type; trailing * = prefix")] = None,
    resource: Annotated[str | None, typer.Option(help="only incidents about this resource id or identity")] = None,
    age: Annotated[str | None, typer.Option(help="opened within this long: 30m, 24h, 7d, 2w")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
) -> None:
    """List incidents, newest first (Temporal visibility over irflow's search attributes). Two lines each:
    the ID column is the incident's short id, which every command takes; --json gives the whole ids."""
    try:
        opened = parse_window(age, "--age") if age else None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    query = incident_query(
        running=True if open_only else None,
        opened=opened,
        status=status,
        phase=phase,
        severity=severity,
        finding_type=finding_type,
        resource=resource,
    )

    async def work(client: Client) -> list[dict[str, Any]]:
        return [row.model_dump() for row in await incident_rows(client, query, limit)]

    rows = run(work)
    if as_json:
        print_json(rows)
        return
    render_list(rows)


_STATUS_STYLE = {
    "active": "cyan",
    "awaiting_decision": "bold yellow",
    "escalated": "bold red",
    "resolved": "green",
    "failed": "red",
}
_GAP = "  "


def render_list(rows: list[dict[str, Any]]) -> None:
    """Two lines an incident, so nothing is cut at 80 columns: the short id and what changes (status, phase,
    severity, start) line up on the first; what it is about (resource, finding type) has the second to itself."""
    console.print(Text(f"{len(rows)} incident(s), newest first; ID is the short id every command takes", style="bold"))
    if not rows:
        return
    header = ("ID", "STATUS", "PHASE", "SEVERITY", "STARTED (UTC)")
    lines = [
        (
            short_id(r["incident_id"] or r["workflow_id"]),
            r["status"] or "",
            r["phase"] or "",
            r["severity"] or "",
            r["started"].strftime("%Y-%m-%d %H:%M") if r["started"] else "",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (header, *lines)) for i in range(len(header))]
    indent = widths[0] + len(_GAP)

    def first_line(cells: tuple[str, ...], styles: tuple[str, ...]) -> Text:
        text = Text()
        for cell, width, style in zip(cells, widths, styles, strict=True):
            text.append(cell, style)
            text.append(" " * (width - len(cell)) + _GAP)
        text.rstrip()
        return text

    console.print(first_line(header, ("dim",) * len(header)))
    console.print(_indented(Text("RESOURCE · FINDING TYPE", style="dim"), indent))
    for row, cells in zip(rows, lines, strict=True):
        console.print(first_line(cells, ("bold", _STATUS_STYLE.get(cells[1], ""), "", "", "")))
        about = " · ".join(part for part in (row["resource_id"], row["finding_type"]) if part)
        console.print(_indented(Text(about, overflow="fold"), indent))


@app.command()
def show(
    ident: IDENT,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show an incident: its whole id and short id, state, pending decision, timeline, actions, evidence."""
    state = run(lambda client: incident_state(client, ident))
    if as_json:
        print_json(state.model_dump(mode="json"))
        return
    render_incident(state)


def _indented(renderable: Any, by: int = 2) -> Padding:
    return Padding(renderable, (0, 0, 0, by), expand=False)


def _grid(*no_wrap: bool) -> Table:
    """Aligned columns without borders (borders cost a tenth of 80 columns); the last one wraps, never cuts."""
    grid = Table.grid(padding=(0, 2))
    for keep in no_wrap:
        grid.add_column(no_wrap=keep)
    grid.add_column(overflow="fold")
    return grid


def _timeline(entries: list[TimelineEntry]) -> Table:
    grid = _grid(True, True)
    grid.columns[1].min_width = max(len(phase) for phase in Phase)  # entries printed one by one still line up
    for entry in entries:
        grid.add_row(f"{entry.at:%H:%M:%S}", str(entry.phase), Text(entry.event))
    return grid


def render_incident(state: IncidentState) -> None:
    """`irflow show` for a person: the whole incident id on a line of its own, the facts, the timeline, the
    actions and the evidence, each readable at 80 columns. Action results are in --json and the report."""
    # soft_wrap: the terminal may fold a long id on screen, but a copy of the line gives the id whole.
    console.print(Text(state.incident_id, style="bold"), soft_wrap=True)
    short = short_id(state.incident_id)
    facts = _grid(True)
    facts.add_row("short id", short)
    facts.add_row(
        "status",
        Text.assemble((str(state.status), _STATUS_STYLE.get(str(state.status), "")), f" · {state.phase}"),
    )
    facts.add_row("severity", str(state.severity))
    facts.add_row("finding", Text(f"{state.finding.type} ({state.finding.id})"))
    deliveries = state.finding_deliveries
    facts.add_row(
        "findings", f"{state.absorbed_count()} distinct, delivered {deliveries} time{'s' * (deliveries != 1)}"
    )
    facts.add_row("resource", Text(f"{state.finding.resource.resource_type} {state.resource_id}"))
    facts.add_row("playbook", Text(state.playbook))
    if state.pending_decision:
        p = state.pending_decision
        facts.add_row(Text("waiting", style="yellow"), Text(f"since {p.since:%Y-%m-%d %H:%M:%S} UTC: {p.question}"))
        facts.add_row("decide", Text(f"irflow {'|'.join(p.options)} {short} (--help for the rest)"))
    if state.failure_reason:
        facts.add_row(Text("failure", style="red"), Text(state.failure_reason))
    console.print(facts)

    console.print(Text("\ntimeline (UTC)", style="bold"))
    console.print(_indented(_timeline(state.timeline)))

    records = state.actions + state.compensations
    if records:
        console.print(Text("\nactions", style="bold"))
        # Name and phase share a column so that an error, below them, has most of the width.
        actions, width = _grid(True), max(len(a.name) for a in records)
        for a in records:
            what = Text(f"{a.name:<{width}}  {a.phase}")
            if a.error:
                what.append(f"\n{a.error}", style="red")
            actions.add_row(Text(str(a.status), style="red" if a.error else ""), what)
        console.print(_indented(actions))

    if state.evidence:
        prefix = f"incidents/{state.incident_id}/"
        buckets = ", ".join(sorted({e.bucket for e in state.evidence}))
        console.print(Text(f"\nevidence: {len(state.evidence)} object(s) in bucket {buckets}", style="bold"))
        if all(e.key.startswith(prefix) for e in state.evidence):
            console.print(Text("  under incidents/<incident id>/", style="dim"))
            prefix_len = len(prefix)
        else:
            prefix_len = 0
        for e in state.evidence:
            console.print(_indented(Text(e.key[prefix_len:], overflow="fold")))
            detail = _grid(True)
            detail.add_row("sha256", Text(e.sha256))
            if e.version_id:
                detail.add_row("version", Text(e.version_id))
            console.print(_indented(detail, 4))


@app.command()
def report(
    ident: IDENT,
    as_json: Annotated[bool, typer.Option("--json", help="the JSON report instead of Markdown")] = False,
    as_html: Annotated[
        bool, typer.Option("--html", help="the self-contained HTML page instead of Markdown (redirect to a file)")
    ] = False,
) -> None:
    """Print the post-incident report (built from the incident's own record)."""
    from activities.report import render_markdown, report_document
    from activities.report_html import render_html

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


async def _decide(
    client: Client, ident: str, kind: str, payload: dict[str, Any], by: str | None, profile: str | None
) -> DecisionOutcome:
    """Send the decision as `by` (demo mode), or with a proof signed for this incident, verb and words."""
    handle, incident_id = await find_incident(client, ident)
    if by:
        payload = {**payload, "by": by}
    else:
        request = DECISION_REQUESTS[DecisionKind(kind)].model_validate(payload)
        proof = decision_proof(profile, incident_id, kind, request.words(), request.choice())
        payload = {**payload, "proof": proof}
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
    comment: Annotated[str, typer.Option(help="why")] = "",
    eradicate: Annotated[Eradication | None, typer.Option(help="stop (keep) or terminate the instance")] = None,
    by: BY = None,
    profile: PROFILE = None,
    as_json: AS_JSON = False,
) -> None:
    """Approve the pending decision (containment, or eradication with --eradicate). CRITICAL incidents need
    two different approvers before eradication. Signed with your AWS credentials: you are who they say."""
    payload: dict[str, Any] = {"comment": comment}
    if eradicate:
        payload["eradication"] = eradicate.value
    _report_decision(run(lambda client: _decide(client, ident, "approve", payload, by, profile)), as_json)


@app.command()
def reject(
    ident: IDENT,
    reason: Annotated[str, typer.Option(help="why this is a false positive")],
    by: BY = None,
    profile: PROFILE = None,
    as_json: AS_JSON = False,
) -> None:
    """Reject the finding as a false positive: containment is undone."""
    payload = {"reason": reason}
    _report_decision(run(lambda client: _decide(client, ident, "reject", payload, by, profile)), as_json)


@app.command()
def release(
    ident: IDENT,
    comment: Annotated[str, typer.Option(help="what recovery was done")],
    by: BY = None,
    profile: PROFILE = None,
    as_json: AS_JSON = False,
) -> None:
    """End containment after recovery: the finding was real, the resource is clean; containment is lifted."""
    payload = {"comment": comment}
    _report_decision(run(lambda client: _decide(client, ident, "release", payload, by, profile)), as_json)


@app.command()
def note(
    ident: IDENT,
    text: Annotated[str, typer.Argument(help="the note")],
    by: BY = None,
    profile: PROFILE = None,
    as_json: AS_JSON = False,
) -> None:
    """Add a note to the incident's record (and its report)."""
    payload = {"text": text}
    _report_decision(run(lambda client: _decide(client, ident, "note", payload, by, profile)), as_json)


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
                    console.print(_timeline([entry]))
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
