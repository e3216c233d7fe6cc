"""irflow as a user runs it: worker.py and starter.py as processes, the irflow CLI, a dev server,
a moto server. Checks are made in the moto server, the way a responder would check AWS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import boto3
import pytest

from irflow.cli.common import short_id
from irflow.devstack.demo import sample_finding
from irflow.models.incident import IncidentState, Status
from irflow.temporal_client import connect, ensure_search_attributes
from tests.support import REPO, free_port

pytestmark = pytest.mark.e2e


async def _state(address: str, workflow_id: str) -> IncidentState:
    client = await connect(address=address)
    return await client.get_workflow_handle(workflow_id).query("current_state", result_type=IncidentState)


async def _wait(address: str, workflow_id: str, predicate, timeout: float = 60) -> IncidentState:
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await _state(address, workflow_id)
            if predicate(last):
                return last
        except Exception:  # noqa: BLE001 (not picked up by the worker yet)
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting; last state {last and (last.status, last.phase, last.failure_reason)}")


async def _count_incidents(address: str) -> int:
    client = await connect(address=address)
    return len([w async for w in client.list_workflows("WorkflowType = 'IncidentWorkflow'")])


async def _worker_and_ingested_finding(stack, account, tmp_path, worker_name: str) -> tuple[dict[str, str], str]:
    """A worker process, and the account's sample finding handed in by `starter.py FILE`: (env, workflow id)."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    env = stack.env(**account.worker_environment())
    stack.group.start(worker_name, [sys.executable, "worker.py"], env=env)
    finding = tmp_path / "finding.json"
    finding.write_text(json.dumps(sample_finding(account.instance_id, account.account_id, account.region)))
    started = stack.run("starter.py", str(finding), env=env)
    assert started.returncode == 0, started.stderr
    return env, started.stdout.split("(workflow ", 1)[1].split(")", 1)[0]


async def test_worker_and_starter_processes_contain_and_eradicate(stack, account, tmp_path):
    env, workflow_id = await _worker_and_ingested_finding(stack, account, tmp_path, "worker-" + account.instance_id)

    state = await _wait(stack.temporal_address, workflow_id, lambda s: s.status == Status.AWAITING_DECISION)
    ec2 = boto3.client("ec2", region_name=account.region)
    quarantine = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [account.vpc_id]}, {"Name": "tag:irflow:role", "Values": ["quarantine"]}]
    )["SecurityGroups"]
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [account.instance_id]}]
    )["NetworkInterfaces"]
    assert len(quarantine) == 1 and len(enis) == 2
    assert all([g["GroupId"] for g in eni["Groups"]] == [quarantine[0]["GroupId"]] for eni in enis)
    snapshots = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:irflow:incident-id", "Values": [state.incident_id]}]
    )["Snapshots"]
    assert len(snapshots) == 2

    listed = stack.irflow("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert workflow_id in [row["workflow_id"] for row in json.loads(listed.stdout)]
    shown = stack.irflow("show", workflow_id, "--json", env=env)
    assert json.loads(shown.stdout)["status"] == "awaiting_decision"

    approved = stack.irflow("approve", workflow_id, "--as", "alice", "--eradicate", "stop", "--comment", "C2 confirmed")
    assert approved.returncode == 0, approved.stderr
    assert "accepted" in approved.stdout
    final = await _wait(stack.temporal_address, workflow_id, lambda s: s.status.is_final)
    assert final.status == Status.RESOLVED
    instance = ec2.describe_instances(InstanceIds=[account.instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped"

    report = stack.irflow("report", workflow_id, env=env)
    assert report.returncode == 0 and "alice" in report.stdout and "isolate_network" in report.stdout


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{ this is not json", "not JSON"),
        (json.dumps({"hello": "world"}), "not a GuardDuty finding"),
        (json.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": {}}), "detail-type"),
        ("MISSING_INSTANCE", "does not exist"),
    ],
)
async def test_bad_finding_files_get_one_clear_line_and_start_nothing(stack, account, tmp_path, content, problem):
    if content == "MISSING_INSTANCE":
        content = json.dumps(sample_finding("i-0aaaaaaaaaaaaaaaa", account.account_id, account.region))
    path = tmp_path / "bad.json"
    path.write_text(content)
    before = await _count_incidents(stack.temporal_address)
    result = stack.run("starter.py", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and str(path) in lines[0], result.stderr
    assert await _count_incidents(stack.temporal_address) == before


def test_cli_reports_unknown_incident_and_unreachable_server(stack):
    unknown = stack.irflow("show", "ec2-000000000000-us-east-1-i-0000000000000000a")
    assert unknown.returncode == 3 and "no incident" in unknown.stderr
    unreachable = stack.irflow("list", env=stack.env(TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}"))
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().count("\n") == 0 and "cannot reach Temporal" in unreachable.stderr


@pytest.mark.solo
def test_make_run_reaches_a_decision_within_ten_seconds_of_the_worker_starting(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "irflow.devstack.run",
            "--state-dir",
            str(tmp_path),
            "--temporal-port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
            "--exit-when-ready",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-2])
    assert summary["status"] == "awaiting_decision"
    assert summary["seconds_since_worker_start"] < 10
    assert "irflow approve" in result.stdout and "http://localhost:" in result.stdout
    # the printed `source demo.env` gives another terminal the stack's environment, JSON values intact
    sourced = subprocess.run(
        ["bash", "-c", f"set -e; source {tmp_path / 'demo.env'}; env -0"], capture_output=True, text=True
    )
    assert sourced.returncode == 0 and sourced.stderr == "", sourced.stderr
    environment = dict(item.split("=", 1) for item in sourced.stdout.split("\0") if "=" in item)
    assert json.loads(environment["IRFLOW_APPROVERS"]), "the approvers map survives the shell"
    assert environment["TEMPORAL_ADDRESS"].startswith("127.0.0.1:")


async def test_every_cli_command_against_a_real_dev_server(stack, account, tmp_path):
    """list (filters, and as an 80-column terminal shows it), watch, show, note, a refused approve, release,
    report: each as a real process, `--json` output parsed, exit codes checked; note and release name the
    incident by the short id `list` shows."""
    _, workflow_id = await _worker_and_ingested_finding(stack, account, tmp_path, "worker-cli-" + account.instance_id)

    watched = stack.irflow("watch", workflow_id, "--json", "--timeout", "60")
    assert watched.returncode == 0, watched.stderr
    *timeline, summary = [json.loads(line) for line in watched.stdout.strip().splitlines()]
    assert summary["needs_you"]["kind"] == "eradication" and summary["status"] == "awaiting_decision"
    assert any(entry["event"].startswith("phase: containment") for entry in timeline)

    async def listed(*filters: str) -> list[str]:
        for _ in range(40):  # visibility is eventually consistent
            result = stack.irflow("list", "--json", *filters)
            assert result.returncode == 0, result.stderr
            ids = [row["workflow_id"] for row in json.loads(result.stdout)]
            if workflow_id in ids or "--type" in filters and "Recon:*" in filters:
                return ids
            await asyncio.sleep(0.25)
        return ids

    assert workflow_id in await listed(
        "--status", "awaiting_decision", "--severity", "high", "--type", "Backdoor:*", "--age", "1h"
    )
    assert workflow_id not in await listed("--type", "Recon:*")
    assert stack.irflow("list", "--age", "soon").returncode == 2, "a bad filter is a usage error"

    short = short_id(summary["incident_id"])
    narrow = stack.irflow("list", "--resource", account.instance_id, env=stack.env(COLUMNS="80"))
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert "…" not in narrow.stdout and max(len(line.rstrip()) for line in lines) <= 80, narrow.stdout
    row = next(line.split() for line in lines if line.startswith(short))
    assert row[1:4] == ["awaiting_decision", "analyst_decision", "HIGH"], narrow.stdout
    assert f"{account.instance_id} · Backdoor:EC2/C&CActivity.B!DNS" in narrow.stdout

    noted = stack.irflow("note", short[:5], "--as", "dave", "reimaged from the golden AMI", "--json")
    assert noted.returncode == 0 and json.loads(noted.stdout)["accepted"] is True
    refused = stack.irflow("approve", workflow_id, "--as", "mallory", "--json")
    assert refused.returncode == 1 and "not a configured approver" in json.loads(refused.stdout)["message"]
    refused = stack.irflow("reject", workflow_id, "--as", "mallory", "--reason", "let me in")
    assert refused.returncode == 1 and refused.stderr.startswith("refused: ") and refused.stdout == ""
    released = stack.irflow("release", short, "--as", "carol", "--comment", "recovered", "--json")
    assert released.returncode == 0, released.stdout + released.stderr
    assert json.loads(released.stdout)["kind"] == "release"

    final = await _wait(stack.temporal_address, workflow_id, lambda s: s.status.is_final)
    assert final.status == Status.RESOLVED
    shown = json.loads(stack.irflow("show", workflow_id, "--json").stdout)
    assert [d["kind"] for d in shown["decisions"] if d["accepted"]] == ["note", "release"]
    report = stack.irflow("report", workflow_id, "--json")
    assert report.returncode == 0
    assert [d["by"] for d in json.loads(report.stdout)["decisions"]] == ["dave", "carol"]
