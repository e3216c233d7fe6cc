"""Commands about detection rules: list them, run their tests, replay CloudTrail records through them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from irflow.cli.common import AS_JSON, EXIT_REFUSED, app, console, fail, print_json

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
        print_json({"rules": rows, "unsupported": unsupported})
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
    from irflow.detection.rule_files import PythonRule
    from irflow.detection.rule_tests import run_rule_tests

    catalogue = _catalogue([], python_dirs)
    rules = [r for r in catalogue.rules + catalogue.disabled if isinstance(r, PythonRule)]
    failures = run_rule_tests(rules)
    broken = [f"{u.source}: {u.reason}" for u in catalogue.unsupported]
    tested = sum(len(r.tests) for r in rules)
    if as_json:
        print_json({"rules": len(rules), "tests": tested, "failures": [str(f) for f in failures], "unloadable": broken})
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
        data = sys.stdin.buffer.read() if str(replay) == "-" else replay.read_bytes()
        events = list(read_bytes(data, get_settings().log_file_max_bytes))
    except (OSError, ValueError, EOFError) as error:  # EOFError: a truncated gzip file
        fail(f"cannot read {replay}: {error}", EXIT_REFUSED)
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
