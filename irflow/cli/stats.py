"""`irflow stats`: incidents by finding type, playbook and outcome, and the time to contain and to decide
(median, p90), over the incidents that finished lately: listed by Temporal visibility, measured from each one's
stored report (irflow/stats.py says how each figure is made, and why the stored reports). The window ends now;
a hidden --until ends it at a given moment instead (a fixed window: how the tests pin one between two closes).

Exit codes as every command's: 0 done; 2 Temporal unreachable (or a bad --since, as typer reports usage errors).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text
from temporalio.client import Client

from irflow.cli.common import AS_JSON, app, console, print_json, run

if TYPE_CHECKING:
    from irflow.stats import IncidentFacts, Stats
    from irflow.visibility import Window


async def listed_incidents(client: Client, window: Window) -> list[IncidentFacts]:
    """Every incident finished within `window`, and every one still open that opened within it. The open ones are
    asked for first: one that ends in between is then listed twice (and kept as finished), never missed."""
    from irflow.stats import IncidentFacts, outcome_of
    from irflow.visibility import incident_query, incident_rows

    facts: dict[tuple[str, str | None], IncidentFacts] = {}
    for query in (incident_query(running=True, opened=window), incident_query(running=False, closed=window)):
        for row in await incident_rows(client, query):
            facts[row.workflow_id, row.run_id] = IncidentFacts(
                workflow_id=row.workflow_id,
                run_id=row.run_id,
                incident_id=row.incident_id or row.workflow_id,
                finding_type=row.finding_type,
                outcome=outcome_of(row.status, row.workflow_status),
                started_at=row.started,
                closed_at=row.closed,
            )
    return list(facts.values())


def with_reports(facts: list[IncidentFacts]) -> list[IncidentFacts]:
    """Each finished incident completed from its stored report; the others say why they have none."""
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from irflow.models.identifiers import INCIDENT_ID, refusal
    from irflow.models.settings import get_settings
    from irflow.stats import OPEN, REPORT_JSON

    settings = get_settings()
    bucket = settings.evidence_bucket
    s3 = boto3.client("s3", region_name=settings.evidence_region or None) if bucket else None
    completed = []
    for f in facts:
        why = None
        if f.outcome == OPEN:
            why = "still open: its report is written when it ends"
        elif s3 is None:
            why = "no evidence bucket (IRFLOW_EVIDENCE_BUCKET is not set)"
        elif problem := refusal(INCIDENT_ID, f.incident_id):
            why = f"no report can be stored for it: {problem}"
        if why:
            completed.append(f.model_copy(update={"no_report": why}))
            continue
        key = f"incidents/{f.incident_id}/{REPORT_JSON}"
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            completed.append(f.with_report(json.loads(body), f"s3://{bucket}/{key}"))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            missing = code in ("NoSuchKey", "404", "NotFound")
            why = f"no stored report at s3://{bucket}/{key}" if missing else f"report unreadable: {code or error}"
            completed.append(f.model_copy(update={"no_report": why}))
        except (BotoCoreError, ValueError) as error:  # not JSON, or not a report (pydantic's errors are ValueErrors)
            first_line = str(error).splitlines()[0]
            completed.append(f.model_copy(update={"no_report": f"report unreadable: {first_line}"}))
    return completed


def _seconds(value: float | None) -> str:
    from activities.report_wording import duration_text

    return duration_text(value)


def render_stats(stats: Stats) -> None:
    """The figures for a person: the times first, then the counts, then what was left out of the times."""
    from irflow.stats import figure_rows

    console.print(
        f"[bold]irflow stats, the last {stats.since}[/] ({stats.window_start:%Y-%m-%d %H:%M} to "
        f"{stats.window_end:%Y-%m-%d %H:%M} UTC): {stats.incidents} incident(s), {stats.finished} finished, "
        f"{stats.open} still open; {stats.with_report} with a stored report",
        highlight=False,
    )
    times = Table("FIGURE", "FROM → TO", "OVER", "MEDIAN", "P90", box=None, pad_edge=False)
    for row, value in figure_rows(stats):
        over = f"{value.count} {row.unit}"
        times.add_row(row.name, f"{row.start} → {row.end}", over, _seconds(value.median_s), _seconds(value.p90_s))
    console.print(times)
    for title, counts in (
        ("FINDING TYPE", stats.by_finding_type),
        ("PLAYBOOK", stats.by_playbook),
        ("OUTCOME", stats.by_outcome),
    ):
        table = Table(title, "INCIDENTS", box=None, pad_edge=False)
        table.columns[0].overflow = "fold"
        table.columns[1].justify = "right"
        for name, count in counts.items():
            table.add_row(Text(name), str(count))  # as written: a name is never read as markup
        console.print()
        console.print(table, highlight=False)
    if stats.left_out:
        console.print(f"\n{len(stats.left_out)} incident(s) counted but left out of the times:", highlight=False)
        for incident_id, why in stats.left_out.items():
            console.print(f"  {incident_id}: {why}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def stats(
    since: Annotated[str, typer.Option(help="incidents finished within this long: 30d, 12h, 2w, 90m")] = "30d",
    as_json: AS_JSON = False,
    as_html: Annotated[
        bool,
        typer.Option("--html", help="a self-contained HTML page drawing the figures over time (redirect to a file)"),
    ] = False,
    until: Annotated[
        datetime | None,
        typer.Option(
            hidden=True,
            formats=["%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"],
            help="the window's end (UTC unless it says otherwise) instead of now: the window is fixed, not moving",
        ),
    ] = None,
) -> None:
    """Incidents by finding type, playbook and outcome, and the time to contain and to decide (median, p90),
    over the incidents finished within --since: listed by Temporal visibility, timed from their stored reports."""
    from irflow.stats import compute, render_stats_html
    from irflow.visibility import parse_window

    if as_json and as_html:
        raise typer.BadParameter("choose one of --json and --html")
    try:
        window = parse_window(since, "--since", end=until)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    facts = with_reports(run(lambda client: listed_incidents(client, window)))
    result = compute(facts, since, window.start, window.end or datetime.now(UTC))
    if as_json:
        print_json(result.model_dump(mode="json"))
    elif as_html:
        sys.stdout.write(render_stats_html(result))
    else:
        render_stats(result)
