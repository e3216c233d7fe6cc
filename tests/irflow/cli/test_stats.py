"""`irflow stats` over real incidents (a Temporal dev server of its own, the demo account in moto): three run to
their end (an instance approved and stopped; the other instance rejected as a false positive; a leaked key
approved), one left waiting for a decision. Its medians and p90s are the ones worked out here, independently,
from the reports the incidents stored in the evidence bucket; the open incident is counted and left out of the
times; --since leaves out what closed before its window (fixed with the hidden --until: no waiting on the
clock); --html draws the figures; the table and the page word each figure the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from irflow.cli import app
from irflow.cli.common import console
from irflow.cli.stats import render_stats, with_reports
from irflow.devstack.demo import sample_access_key_finding, sample_bucket_finding, sample_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Phase, Status
from irflow.models.settings import get_settings
from irflow.stats import REPORT_JSON, IncidentFacts, compute, render_stats_html
from tests.irflow.test_stats import summary_rows
from tests.support import BIN, read_evidence, running_worker, wait_for
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow

RUNNER = CliRunner()
EC2_TYPE = "Backdoor:EC2/C&CActivity.B!DNS"
KEY_TYPE = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"
BUCKET_TYPE = "Policy:S3/BucketAnonymousAccessGranted"


@pytest.fixture(scope="module")
async def stats_env(tmp_path_factory):
    """A dev server of its own: `irflow stats` counts every incident in the namespace, and no other test's."""
    state = tmp_path_factory.mktemp("temporal-stats")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_database_filename=str(state / "temporal.db"),
        search_attributes=list(sa.ALL),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


async def _stats(address: str, *args: str, **env: str) -> tuple[int, str]:
    get_settings.cache_clear()  # the command reads its settings (the evidence bucket) from `env` as it runs
    try:
        result = await asyncio.to_thread(RUNNER.invoke, app, ["stats", *args], env={"TEMPORAL_ADDRESS": address, **env})
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.stdout


async def _open(client, settings, event: dict):
    submission = await submit(client, parse_guardduty(event), settings)
    handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
    await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.phase == Phase.DECISION, 90)
    return handle


async def _decide(handle, verb: str, decision: dict) -> tuple[IncidentState, datetime]:
    """The incident decided with `verb` and run to its end: its final state, and when visibility says it closed."""
    await handle.signal(verb, decision)
    final = await handle.result()
    return final, (await handle.describe()).close_time


async def _to_the_end(client, settings, event: dict, verb: str, decision: dict) -> tuple[IncidentState, datetime]:
    return await _decide(await _open(client, settings, event), verb, decision)


def _stored_report(final: IncidentState) -> dict:
    (stored,) = [e for e in final.evidence if e.key == f"incidents/{final.incident_id}/report/report.json"]
    return json.loads(read_evidence(stored))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _expected(reports: list[dict]) -> dict:
    """Count, median and nearest-rank p90 of the times, worked out from the stored reports alone: contained minus
    detected (their milestones); the one accepted decision minus when the analyst-decision phase began."""
    contain = [(_at(r["milestones"]["contained"]) - _at(r["milestones"]["detected"])).total_seconds() for r in reports]
    decide = []
    for r in reports:
        asked = next(_at(t["at"]) for t in r["timeline"] if t["phase"] == Phase.DECISION)
        (decided,) = [_at(d["at"]) for d in r["decisions"] if d["accepted"] and d["kind"] != "note"]
        decide.append((decided - asked).total_seconds())

    def summary(values: list[float]) -> dict:
        ranked = sorted(values)
        return {
            "count": len(values),
            "median_s": statistics.median(values),
            "p90_s": ranked[math.ceil(0.9 * len(ranked)) - 1],
        }

    return _figures({"time_to_contain": summary(contain), "time_to_decide": summary(decide)})


def _figures(output: dict) -> dict:
    """{"time_to_contain median_s": ..., ...}: each figure's count, median and p90, one level deep."""
    return {f"{name} {k}": v for name in ("time_to_contain", "time_to_decide") for k, v in output[name].items()}


async def test_stats_over_finished_incidents_matches_their_stored_reports(stats_env, workload):
    client = stats_env.client
    address = client.service_client.config.target_host
    account, region = workload.account_id, workload.region
    async with running_worker(client) as settings:
        first, first_closed = await _to_the_end(
            client,
            settings,
            sample_finding(workload.instance_id, account, region, finding_id="a" * 32),
            "approve",
            {"by": "alice", "comment": "confirmed", "eradication": "stop"},
        )
        rejected_handle, key_handle, waiting = await asyncio.gather(
            _open(client, settings, sample_finding(workload.other_instance_id, account, region, finding_id="b" * 32)),
            _open(
                client, settings, sample_access_key_finding(workload.iam_user, workload.access_key_id, account, region)
            ),
            _open(client, settings, sample_bucket_finding(workload.public_bucket, account, region)),
        )
        (rejected, rejected_closed), (key, key_closed) = await asyncio.gather(
            _decide(rejected_handle, "reject", {"by": "bob", "reason": "our own scanner"}),
            _decide(key_handle, "approve", {"by": "alice", "comment": "key used from a TOR exit"}),
        )
        try:
            assert [f.status for f in (first, rejected, key)] == [Status.RESOLVED, Status.ROLLED_BACK, Status.RESOLVED]
            reports = {f.incident_id: _stored_report(f) for f in (first, rejected, key)}
            open_id = (await waiting.query("current_state", result_type=IncidentState)).incident_id

            code, output = await _stats(address, "--json")
            assert code == 0, output
            stats = json.loads(output)
            assert (stats["incidents"], stats["finished"], stats["open"], stats["with_report"]) == (4, 3, 1, 3)
            assert stats["by_outcome"] == {"resolved": 2, "open": 1, "rolled_back": 1}
            assert stats["by_finding_type"] == {EC2_TYPE: 2, BUCKET_TYPE: 1, KEY_TYPE: 1}
            assert stats["by_playbook"] == {"ec2-instance": 2, "(no report)": 1, "iam-user-credentials": 1}
            assert _figures(stats) == pytest.approx(_expected(list(reports.values())), abs=1e-3)
            assert stats["time_to_contain"]["median_s"] > 0 and stats["time_to_decide"]["median_s"] > 0
            assert stats["left_out"] == {open_id: "still open: its report is written when it ends"}
            bucket = workload.evidence_bucket
            assert {r["incident_id"]: r["report"] for r in stats["records"] if r["report"]} == {
                i: f"s3://{bucket}/incidents/{i}/report/report.json" for i in reports
            }

            # --since, in a window fixed with --until (Temporal's own times, to the microsecond): it opens after the
            # other three opened (so after the first closed) and before two of them closed, and ends after those.
            starts = sorted([(await h.describe()).start_time for h in (rejected_handle, key_handle, waiting)])
            opened, later_closed = starts[-1], sorted([rejected_closed, key_closed])
            assert first_closed < starts[0] and opened < later_closed[0]
            start = opened + (later_closed[0] - opened) / 2
            seconds = math.ceil((later_closed[1] - start).total_seconds()) + 1
            until = start + timedelta(seconds=seconds)
            code, output = await _stats(address, "--json", "--since", f"{seconds}s", "--until", until.isoformat())
            assert code == 0, output
            recent = json.loads(output)
            assert (_at(recent["window_start"]), _at(recent["window_end"])) == (start, until)
            # The open incident opened before the window (with the others): left out too.
            assert {r["incident_id"] for r in recent["records"]} == {rejected.incident_id, key.incident_id}
            assert recent["by_outcome"] == {"resolved": 1, "rolled_back": 1} and recent["left_out"] == {}
            later = [reports[rejected.incident_id], reports[key.incident_id]]
            assert _figures(recent) == pytest.approx(_expected(later), abs=1e-3)
            # A window that ends between the first's close and the others' opening holds the first alone: what
            # closed or opened after its end is not in it.
            before_them = first_closed + (starts[0] - first_closed) / 2
            code, output = await _stats(address, "--json", "--since", "1h", "--until", before_them.isoformat())
            assert code == 0, output
            assert [r["incident_id"] for r in json.loads(output)["records"]] == [first.incident_id]

            # --html: one page, its charts drawn, a dot per incident contained.
            code, page = await _stats(address, "--html")
            assert code == 0 and page.startswith("<!DOCTYPE html>") and "<script" not in page
            charts = {}
            for piece in page.split("<svg")[1:]:
                svg = ET.fromstring("<svg" + piece.split("</svg>")[0] + "</svg>")
                charts[svg.get("id")] = svg
            assert set(charts) == {"per-day", "time-to-contain", "time-to-decide"}
            dots = charts["time-to-contain"].iter("{http://www.w3.org/2000/svg}circle")
            contain = sorted(float(d.get("data-seconds")) for d in dots)
            assert contain == pytest.approx(sorted(r["metrics"]["detected_to_contained_s"] for r in reports.values()))

            # No evidence bucket: every incident still counted, none timed, each saying why.
            code, output = await _stats(address, "--json", IRFLOW_EVIDENCE_BUCKET="")
            assert code == 0, output
            blind = json.loads(output)
            assert (blind["incidents"], blind["with_report"], blind["time_to_contain"]["median_s"]) == (4, 0, None)
            assert blind["by_outcome"] == stats["by_outcome"] and blind["time_to_decide"]["count"] == 0
            assert blind["left_out"] == {
                **{i: "no evidence bucket (IRFLOW_EVIDENCE_BUCKET is not set)" for i in reports},
                open_id: "still open: its report is written when it ends",
            }

            # The table a person reads.
            code, text = await _stats(address)
            assert code == 0 and "time to contain" in text and "1 incident(s) counted but left out" in text
            assert f"{open_id}: still open" in text
        finally:
            with contextlib.suppress(Exception):
                await waiting.terminate("the stats test is over")


def test_the_table_a_person_reads_and_the_page_word_each_figure_the_same():
    closed = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    facts = [
        IncidentFacts(workflow_id=f"ec2-{n}", incident_id=f"ec2-{n}-20260301T090000Z", outcome="resolved",
                      closed_at=closed, report=f"s3://b/{n}", time_to_contain_s=contain, times_to_decide_s=decide)
        for n, contain, decide in (("a", 12.0, [300.0, 60.0]), ("b", 30.0, [45.0]), ("c", None, []))
    ]  # fmt: skip
    stats = compute(facts, "1d", closed - timedelta(days=1), closed)
    with console.capture() as captured:
        render_stats(stats)
    lines = [" ".join(line.split()) for line in captured.get().splitlines()]
    figures = summary_rows(render_stats_html(stats))[1:]
    assert [row[0] for row in figures] == ["time to contain", "time to decide"]
    for name, start, end, over, median, p90 in figures:
        assert f"{name} {start} → {end} {over} {median} {p90}" in lines, (name, lines)
    assert "time to decide question asked → decided 3 question(s) 1m 0s 5m 0s" in lines


def test_an_incident_without_a_readable_report_is_left_out_of_the_times_saying_why(workload):
    def finished(name: str) -> IncidentFacts:
        return IncidentFacts(workflow_id=f"ec2-{name}", incident_id=f"ec2-{name}-20260301T090000Z", outcome="resolved")

    bucket = workload.evidence_bucket
    garbled = "incidents/ec2-garbled-20260301T090000Z/report/report.json"
    boto3.client("s3").put_object(Bucket=bucket, Key=garbled, Body=b"not json", ChecksumAlgorithm="SHA256")
    facts = with_reports([finished("missing"), finished("garbled"), finished("x/../y")])
    assert [f.report for f in facts] == [None, None, None]
    assert (
        facts[0].no_report == f"no stored report at s3://{bucket}/incidents/ec2-missing-20260301T090000Z/{REPORT_JSON}"
    )
    assert facts[1].no_report.startswith("report unreadable: Expecting value")
    assert facts[2].no_report.startswith("no report can be stored for it:")
    stats = compute(facts, "1d", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert (stats.incidents, stats.with_report, stats.time_to_contain.count) == (3, 0, 0)
    assert set(stats.left_out) == {f.incident_id for f in facts}
