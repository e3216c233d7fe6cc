"""`irflow preflight` as an operator runs it: every readiness check once, a table or JSON with one entry per check,
and an exit code that follows the required checks; `irflow schedule` creates the readiness schedule, then updates
it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import boto3
from typer.testing import CliRunner

from activities.readiness import readiness_plan, readiness_scopes
from activities.readiness_temporal import pollers_check
from irflow.cli import app
from irflow.cli.common import console
from irflow.models.readiness import CheckResult, CheckStatus, ReadinessReport
from irflow.models.settings import get_settings
from irflow.readiness_schedule import readiness_schedule_id
from tests.support import free_port, running_worker

RUNNER = CliRunner()
TEMPORAL_CHECKS = ["temporal.search_attributes", "temporal.workflow_pollers", "temporal.activity_pollers"]


async def _preflight(*args: str, env: dict[str, str]):
    return await asyncio.to_thread(RUNNER.invoke, app, ["preflight", *args], env=env)


async def _polled(client, queue: str) -> None:
    """Until the worker just started has polled its queue for both kinds of task, as a running one has."""
    for _ in range(200):
        checked = [await pollers_check(client, queue, kind) for kind in ("workflow", "activity")]
        if all(r.status == CheckStatus.PASS for r in checked):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker seen polling {queue}")


async def test_preflight_json_has_one_entry_per_check_and_exits_by_the_required_ones(
    dev_env, ready, workload, monkeypatch
):
    client = dev_env.client
    async with running_worker(client) as settings:
        monkeypatch.setenv("IRFLOW_TASK_QUEUE", settings.task_queue)
        get_settings.cache_clear()
        await _polled(client, settings.task_queue)
        env = {"TEMPORAL_ADDRESS": client.service_client.config.target_host}

        green = await _preflight("--json", env=env)
        assert green.exit_code == 0, green.output
        shown = json.loads(green.stdout)
        planned = [c.check_id for _, checks in readiness_plan(readiness_scopes(get_settings())) for c in checks]
        assert [r["check"] for r in shown["results"]] == planned + TEMPORAL_CHECKS, "one entry per check, in order"
        assert len({r["key"] for r in shown["results"]}) == len(shown["results"])
        assert shown["ready"] is True
        assert [(r["check"], r["evidence"]) for r in shown["results"] if r["status"] != "pass"] == []

        boto3.client("kms", region_name=workload.region).disable_key(KeyId=workload.kms_key_id)
        broken = await _preflight("--json", env=env)
        assert broken.exit_code == 1, broken.output
        shown = json.loads(broken.stdout)
        failing = [r for r in shown["results"] if r["status"] != "pass"]
        assert [(r["check"], r["status"], r["required"]) for r in failing] == [("kms.keys", "fail", True)]
        assert shown["ready"] is False and workload.kms_key_id in failing[0]["evidence"] and failing[0]["fix"]

        table = await _preflight(env={**env, "COLUMNS": "200"})
        assert table.exit_code == 1
        lines = table.stdout.splitlines()
        assert any("kms.keys" in line and "fail" in line for line in lines), table.stdout
        assert lines[-1].startswith("not ready: 1 required check(s) fail: kms.keys@"), lines[-1]


async def test_unreachable_temporal_leaves_the_temporal_checks_unknown_and_the_exit_to_aws(ready):
    nowhere = f"127.0.0.1:{free_port()}"
    result = await _preflight("--json", env={"TEMPORAL_ADDRESS": nowhere})
    shown = json.loads(result.stdout)
    temporal = [r for r in shown["results"] if r["check"].startswith("temporal.")]
    assert [(r["check"], r["status"]) for r in temporal] == [(c, "unknown") for c in TEMPORAL_CHECKS]
    assert all(nowhere in r["evidence"] for r in temporal)
    assert result.exit_code == 0 and shown["ready"] is True, "unknown is not a failure"


def test_evidence_and_fixes_from_the_account_are_printed_as_they_are(monkeypatch):
    """Names in an account are anyone's to choose: in the table they are text, never markup (which would stop the
    table at `[/x]`, or print a hyperlink)."""
    hostile = CheckResult(
        check="intake.rules",
        title="The intake rules exist",
        region="us-east-1",
        status=CheckStatus.FAIL,
        evidence="rule worker[/x] is disabled",
        fix="[link=https://evil.example]click here[/link] [bold]now[/bold]",
    )

    async def report(settings):
        return ReadinessReport(checked_at=datetime.now(UTC), results=[hostile])

    monkeypatch.setattr("irflow.cli.readiness.preflight_report", report)  # the table, not the checks, is tested
    # rich fixes a console's width from COLUMNS when it is made: whichever test imported the CLI first decided it
    monkeypatch.setattr(console, "_width", 200)
    shown = RUNNER.invoke(app, ["preflight"], env={"COLUMNS": "200"})
    assert shown.exit_code == 1, shown.output
    assert "rule worker[/x] is disabled" in shown.stdout
    assert "[link=https://evil.example]click here[/link]" in shown.stdout and "[bold]now[/bold]" in shown.stdout
    assert shown.stdout.splitlines()[-1].startswith("not ready: 1 required check(s) fail: intake.rules@-/us-east-1")


async def test_schedule_creates_the_schedule_then_updates_it(dev_env):
    client = dev_env.client
    queue = f"irflow-cli-{free_port()}"
    env = {"TEMPORAL_ADDRESS": client.service_client.config.target_host, "IRFLOW_TASK_QUEUE": queue}
    schedule_id = readiness_schedule_id(queue)
    try:
        first = await asyncio.to_thread(RUNNER.invoke, app, ["schedule"], env=env)
        assert first.exit_code == 0, first.output
        assert first.stdout.startswith(f"created schedule {schedule_id}: ReadinessWorkflow every 3600 s on task queue")
        get_settings.cache_clear()  # another run of the command, with another setting
        again = await asyncio.to_thread(
            RUNNER.invoke, app, ["schedule"], env={**env, "IRFLOW_READINESS_INTERVAL_SECONDS": "600"}
        )
        assert again.exit_code == 0 and again.stdout.startswith(
            f"updated schedule {schedule_id}: ReadinessWorkflow every 600 s"
        )
        described = await client.get_schedule_handle(schedule_id).describe()
        assert [i.every.total_seconds() for i in described.schedule.spec.intervals] == [600]
    finally:
        await client.get_schedule_handle(schedule_id).delete()
        async for run in client.list_workflows(f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"):
            await client.get_workflow_handle(run.id, run_id=run.run_id).terminate("test over")
