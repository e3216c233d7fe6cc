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
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from irflow.models.incident import DecisionOutcome, Eradication, IncidentState
from irflow.temporal_client import TemporalUnreachable, connect, exit_now

app = typer.Typer(help="irflow: automated incident response for AWS, on Temporal.", no_args_is_help=True)
console = Console()

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_TIMEOUT = 1, 2, 3, 4
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
    state = _run(lambda client: _state(client, ident))
    if as_json:
        _print_json(report_document(state))
    elif as_html:
        sys.stdout.write(render_html(state))
    else:
        sys.stdout.write(render_markdown(state))


# --- decisions: Temporal updates, so the answer (accepted, or why not) comes back ---


async def _decide(client: Client, ident: str, kind: str, payload: dict[str, Any]) -> DecisionOutcome:
    handle = await _handle(client, ident)
    try:
        return await handle.execute_update(kind, payload, result_type=DecisionOutcome)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = getattr(cause, "message", None) or str(cause or error)
        return DecisionOutcome(accepted=False, kind=kind, message=message)


def _report_decision(outcome: DecisionOutcome, as_json: bool) -> None:
    if as_json:
        _print_json(outcome.model_dump(mode="json"))
    elif outcome.accepted:
        console.print(outcome.message, markup=False)
    else:
        sys.stderr.write(f"refused: {outcome.message}\n")
    if not outcome.accepted:
        raise typer.Exit(EXIT_REFUSED)


BY = Annotated[str, typer.Option("--as", help="who decides (a configured approver, IRFLOW_APPROVERS)")]
AS_JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
IDENT = Annotated[str, typer.Argument(metavar="ID", help="incident id or workflow id")]


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
    _report_decision(_run(lambda client: _decide(client, ident, "approve", payload)), as_json)


@app.command()
def reject(
    ident: IDENT,
    by: BY,
    reason: Annotated[str, typer.Option(help="why this is a false positive")],
    as_json: AS_JSON = False,
) -> None:
    """Reject the finding as a false positive: containment is undone."""
    _report_decision(_run(lambda client: _decide(client, ident, "reject", {"by": by, "reason": reason})), as_json)


@app.command()
def release(
    ident: IDENT,
    by: BY,
    comment: Annotated[str, typer.Option(help="what recovery was done")],
    as_json: AS_JSON = False,
) -> None:
    """End containment after recovery: the finding was real, the resource is clean; containment is lifted."""
    _report_decision(_run(lambda client: _decide(client, ident, "release", {"by": by, "comment": comment})), as_json)


@app.command()
def note(
    ident: IDENT,
    by: BY,
    text: Annotated[str, typer.Argument(help="the note")],
    as_json: AS_JSON = False,
) -> None:
    """Add a note to the incident's record (and its report)."""
    _report_decision(_run(lambda client: _decide(client, ident, "note", {"by": by, "text": text})), as_json)


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
        handle = await _handle(client, ident)
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

    state = _run(work)
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


# --- detection rules ---

rules_app = typer.Typer(help="Detection rules: list them, run their tests.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
SIGMA = Annotated[
    list[Path] | None,
    typer.Option("--sigma", help="a folder of Sigma rules (repeatable); default IRFLOW_SIGMA_RULES_DIRS"),
]


PYTHON_RULES = Annotated[
    list[Path] | None,
    typer.Option(
        "--rules", help="a folder of your own Python rule files (repeatable); default IRFLOW_PYTHON_RULES_DIRS"
    ),
]


def _catalogue(sigma: list[Path] | None, python_dirs: list[Path] | None = None):
    from irflow.detection.catalogue import load_catalogue
    from irflow.models.settings import get_settings

    settings = get_settings()
    return load_catalogue(
        sigma if sigma is not None else [Path(d) for d in settings.sigma_rules_dirs],
        disabled=settings.detection_disabled_rules,
        python_dirs=python_dirs if python_dirs is not None else [Path(d) for d in settings.python_rules_dirs],
    )


@rules_app.command("list")
def rules_list(sigma: SIGMA = None, python_dirs: PYTHON_RULES = None, as_json: AS_JSON = False) -> None:
    """Every rule irflow evaluates (Python, windowed, Sigma) and the rule files it could not load, with why."""
    catalogue = _catalogue(sigma, python_dirs)
    rows = [
        {
            "id": r.rule_id,
            "kind": r.kind,
            "severity": str(r.severity),
            "finding_type": r.finding_type,
            "title": r.title,
            "event_sources": sorted(r.event_sources),
            "event_names": sorted(r.event_names),
            "name_prefixes": list(r.name_prefixes),
            "identity_types": sorted(r.identity_types),
            "enabled": enabled,
        }
        for enabled, group in ((True, catalogue.rules), (False, catalogue.disabled))
        for r in group
    ]
    unsupported = [{"source": u.source, "reason": u.reason} for u in catalogue.unsupported]
    if as_json:
        _print_json({"rules": rows, "unsupported": unsupported})
        return
    table = Table(title=f"{len(catalogue.rules)} rule(s) enabled, {len(catalogue.disabled)} disabled")
    for column in ("id", "kind", "severity", "finding type", "title", "enabled"):
        table.add_column(column)
    for row in rows:
        cells = [str(row[k]) for k in ("id", "kind", "severity", "finding_type", "title")]
        table.add_row(*(Text(c) for c in cells), Text("yes" if row["enabled"] else "no (disabled)"))
    console.print(table)
    for item in unsupported:
        sys.stderr.write(f"unsupported: {item['source']}: {item['reason']}\n")


@rules_app.command("test")
def rules_test(python_dirs: PYTHON_RULES = None, as_json: AS_JSON = False) -> None:
    """Run every Python rule's own test events (irflow's and yours); exit 1 when any fails or a file won't load."""
    from irflow.detection.python_rules import PythonRule, run_rule_tests

    catalogue = _catalogue([], python_dirs)
    rules = [r for r in catalogue.rules + catalogue.disabled if isinstance(r, PythonRule)]
    failures = run_rule_tests(rules)
    broken = [f"{u.source}: {u.reason}" for u in catalogue.unsupported]
    tested = sum(len(r.tests) for r in rules)
    if as_json:
        _print_json(
            {"rules": len(rules), "tests": tested, "failures": [str(f) for f in failures], "unloadable": broken}
        )
    else:
        for failure in failures:
            sys.stderr.write(f"FAIL {failure}\n")
        for item in broken:
            sys.stderr.write(f"NOT LOADED {item}\n")
        console.print(f"{tested - len(failures)}/{tested} rule tests pass ({len(rules)} rules)", markup=False)
    if failures or broken:
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def detect(
    replay: Annotated[Path, typer.Option("--replay", help="CloudTrail records: JSON lines, a log file (gzip or not)")],
    sigma: SIGMA = None,
    python_dirs: PYTHON_RULES = None,
    as_json: AS_JSON = False,
) -> None:
    """Replay CloudTrail records through every rule and print the alerts (no incident is started).

    Alerts below IRFLOW_DETECTION_MIN_SEVERITY are printed too, marked as leads that would open no incident."""
    from irflow.detection.events import read_bytes
    from irflow.detection.findings import alert_to_finding
    from irflow.models.settings import get_settings

    floor = get_settings().detection_min_severity
    engine = _catalogue(sigma, python_dirs).engine()
    try:
        events = list(read_bytes(sys.stdin.buffer.read() if str(replay) == "-" else replay.read_bytes()))
    except (OSError, ValueError) as error:
        _fail(f"cannot read {replay}: {error}", EXIT_REFUSED)
    alerts = 0
    for event in events:
        for alert in engine.evaluate(event):
            alerts += 1
            finding = alert_to_finding(alert).finding
            if as_json:
                line = {
                    "rule_id": alert.rule_id,
                    "title": alert.title,
                    "severity": str(alert.severity),
                    "finding_type": alert.finding_type,
                    "event_ids": [e.get("eventID") for e in alert.events],
                    "resource": finding.resource.model_dump(mode="json", exclude_defaults=True),
                    "opens_incident": alert.severity.rank >= floor.rank,
                }
                sys.stdout.write(json.dumps(line) + "\n")
            else:
                lead = "" if alert.severity.rank >= floor.rank else f"  [lead: below {floor}, no incident]"
                console.print(
                    f"{event.get('eventTime')} {alert.severity:<8} {alert.rule_id}  {alert.title}  "
                    f"({finding.resource.resource_type} {finding.resource.resource_id}){lead}",
                    markup=False,
                )
    if not as_json:
        console.print(f"{alerts} alert(s) from {len(events)} record(s)", markup=False)


def main() -> NoReturn:
    """Console entry point: run the command, then leave without interpreter teardown (see exit_now)."""
    from irflow.models.settings import SettingsFileError, settings_error_line

    try:
        app()  # typer reports usage errors itself and always ends with SystemExit
        code = 0
    except SystemExit as finished:
        code = finished.code if isinstance(finished.code, int) else (0 if finished.code is None else 1)
    except (SettingsFileError, ValidationError) as error:  # read lazily, by the commands that need settings
        sys.stderr.write(f"error: {settings_error_line(error)}\n")
        code = 2
    exit_now(code)


if __name__ == "__main__":
    main()
