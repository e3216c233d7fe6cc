"""Preparation: `irflow preflight` runs every readiness check once, here and now; `irflow schedule` has Temporal run
them every IRFLOW_READINESS_INTERVAL_SECONDS (the ReadinessWorkflow), notifying when a check changes state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer
from rich.table import Table
from rich.text import Text

from irflow.cli.common import AS_JSON, EXIT_REFUSED, app, console, print_json, run
from irflow.models.readiness import CheckResult, CheckStatus, ReadinessReport
from irflow.models.settings import IrflowSettings

STYLES = {CheckStatus.PASS: "green", CheckStatus.FAIL: "bold red", CheckStatus.UNKNOWN: "yellow"}


async def _temporal_results(settings: IrflowSettings) -> list[CheckResult]:
    from activities.readiness_temporal import temporal_checks, temporal_unreachable
    from irflow.temporal_client import TemporalUnreachable, connect

    try:
        client = await connect()
    except TemporalUnreachable as error:
        return temporal_unreachable(str(error))
    return await temporal_checks(client, settings.task_queue)


async def preflight_report(settings: IrflowSettings) -> ReadinessReport:
    """The checks the ReadinessWorkflow runs, once, in this process: the AWS side with this process's
    credentials and settings (a thread), the Temporal side with a client when Temporal answers (else unknown)."""
    from activities.readiness import run_all_aws_checks

    aws, temporal = await asyncio.gather(asyncio.to_thread(run_all_aws_checks, settings), _temporal_results(settings))
    return ReadinessReport(checked_at=datetime.now(UTC), results=[*aws, *temporal])


def _table(report: ReadinessReport) -> Table:
    from activities.readiness_temporal import where_checked

    table = Table(show_lines=True, expand=True)
    table.add_column("status", no_wrap=True)
    # Evidence and fixes name ARNs and ids longer than a column: folded, never cut short.
    table.add_column("check", ratio=3, overflow="fold")
    table.add_column("where", ratio=2, overflow="fold")
    table.add_column("evidence", ratio=4, overflow="fold")
    table.add_column("fix", ratio=4, overflow="fold")
    # Every value is a Text, never markup: evidence and fixes carry names from the account (`worker[/x]` would
    # stop the table, `[link=…]` would print a hyperlink).
    for result in report.results:
        where = where_checked(result)
        check = Text(result.check, style="bold")
        if not result.required:
            check.append(" (optional)", style="dim")
        check.append(f"\n{result.title}", style="dim")
        table.add_row(
            Text(result.status.value, style=STYLES[result.status]),
            check,
            Text("\n".join(where.rpartition(" ")[::2]) if result.region else where),  # the region on a line
            Text(result.evidence),
            Text(result.fix),
        )
    return table


def _summary(report: ReadinessReport) -> str:
    counts = {status: sum(r.status == status for r in report.results) for status in CheckStatus}
    tally = ", ".join(f"{counts[s]} {s.value}" for s in CheckStatus)
    failing = [r.key for r in report.results if r.required and r.status == CheckStatus.FAIL]
    if failing:
        return f"not ready: {len(failing)} required check(s) fail: {', '.join(failing)} ({tally})"
    return f"ready: no required check fails ({tally})"


@app.command()
def preflight(as_json: AS_JSON = False) -> None:
    """Run every readiness check once: GuardDuty, the trail, the intake stack, the evidence bucket and keys, the
    topics, the worker's and member roles' permissions, forensic egress, and Temporal (search attributes, a worker
    polling). Exit 1 when a required check fails."""
    from irflow.models.settings import get_settings

    report = asyncio.run(preflight_report(get_settings()))
    if as_json:
        print_json(
            {
                "ready": report.ready,
                "checked_at": report.checked_at.isoformat(),
                "results": [{**r.model_dump(mode="json"), "key": r.key} for r in report.results],
            }
        )
    else:
        console.print(_table(report))
        console.print(Text(_summary(report), style="green" if report.ready else "bold red"), soft_wrap=True)
    raise typer.Exit(0 if report.ready else EXIT_REFUSED)


@app.command()
def schedule() -> None:
    """Create, or update to the settings, the Temporal Schedule that runs the readiness checks (ReadinessWorkflow)
    every IRFLOW_READINESS_INTERVAL_SECONDS on IRFLOW_TASK_QUEUE; idempotent."""
    from irflow.models.settings import get_settings
    from irflow.readiness_schedule import ensure_readiness_schedule, readiness_schedule_id

    settings = get_settings()
    created = run(lambda client: ensure_readiness_schedule(client, settings))
    verb, every = ("created" if created else "updated"), settings.readiness_interval_seconds
    console.print(
        Text(
            f"{verb} schedule {readiness_schedule_id(settings.task_queue)}: ReadinessWorkflow every {every} s "
            f"on task queue {settings.task_queue}" + ("; its first run starts now" if created else "")
        ),
        soft_wrap=True,
    )
