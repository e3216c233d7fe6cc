"""`make run` as a newcomer meets it: the stack it starts (a real process, as `make run` starts it), then the
lines it prints for another terminal, pasted exactly as printed, in the order printed."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from irflow.models.incident import short_id
from tests.support import BIN, REPO, free_port

pytestmark = pytest.mark.e2e

READY = "Ctrl-C stops everything."
# What a new terminal has: none of this test process's AWS, Temporal or irflow settings; demo.env gives them.
OWN_SETTINGS = ("AWS_", "TEMPORAL_", "IRFLOW_")


class MakeRun:
    """`python -m irflow.devstack.run` in its own process group, its output read as it comes."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "irflow.devstack.run",
                "--state-dir",
                str(state_dir),
                "--temporal-port",
                str(free_port()),
                "--ui-port",
                str(free_port()),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def until(self, marker: str, timeout: float = 180) -> list[str]:
        """Every line up to the one that is `marker`; fails at once if the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout}s:\n" + "\n".join(self.output)) from None
            if line is None:
                raise AssertionError(f"exited with {self.process.wait()} before {marker!r}:\n" + "\n".join(self.output))
            self.output.append(line)
            if line == marker:
                return list(self.output)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM to its process group (its own pid): run.py then stops what it started, each by pid."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        while (line := self._lines.get(timeout=timeout)) is not None:  # what it said while stopping
            self.output.append(line)
        return code


def _printed_block(output: list[str]) -> list[str]:
    """The lines printed for another terminal: indented, after "In another terminal", up to a blank line."""
    start = next(i for i, line in enumerate(output) if line.startswith("In another terminal")) + 1
    end = output.index("", start)
    assert all(line.startswith("  ") for line in output[start:end]), output[start:end]
    return [line[2:] for line in output[start:end]]


def _paste(source: str, line: str) -> subprocess.CompletedProcess:
    """A new terminal in the repository: the printed `source` line, then the printed line, verbatim."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    env["COLUMNS"] = "80"
    return subprocess.run(
        ["bash", "-c", f"set -e\n{source}\n{line}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def _first_input(shown: str) -> tuple[bytes, bytes]:
    """The workflow input's encoding and data, from `temporal workflow show --output json`."""
    started = json.loads(shown)["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = started["input"]["payloads"][0]
    return base64.b64decode(payload["metadata"]["encoding"]), base64.b64decode(payload["data"])


def _settings(source: str) -> dict[str, str]:
    sourced = subprocess.run(["bash", "-c", f"{source}\nenv -0"], capture_output=True, text=True, check=True)
    return dict(item.split("=", 1) for item in sourced.stdout.split("\0") if "=" in item)


def _ec2(settings: dict[str, str]):
    return boto3.client(
        "ec2",
        endpoint_url=settings["AWS_ENDPOINT_URL"],
        region_name=settings["AWS_DEFAULT_REGION"],
        aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
    )


def _groups(ec2, instance_id: str) -> list[list[str]]:
    interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])[
        "NetworkInterfaces"
    ]
    return sorted(sorted(g["GroupId"] for g in eni["Groups"]) for eni in interfaces)


def _readiness_was_shown_and_scheduled(output: list[str], source: str) -> None:
    """`make run` made the demo account ready, printed `irflow preflight` (all green) and created the readiness
    schedule, whose first run started at once."""
    (scheduled,) = [line for line in output if line.startswith("created schedule ")]
    assert scheduled.startswith("created schedule irflow-readiness-irflow: ReadinessWorkflow every 3600 s"), scheduled
    start = output.index("readiness now (irflow preflight):")
    verdict = next(i for i in range(start, len(output)) if output[i].startswith(("ready:", "not ready:")))
    table = "\n".join(output[start:verdict])
    assert re.fullmatch(r"ready: no required check fails \(\d+ pass, 0 fail, 0 unknown\)", output[verdict]), table
    assert "kms.keys" in table and "Temporal" in table and "status" in table.splitlines()[2]
    settings = _settings(source)
    described = _paste(
        source,
        f"{BIN / 'temporal'} schedule describe -s irflow-readiness-irflow --address {settings['TEMPORAL_ADDRESS']} "
        "-o json",
    )
    assert described.returncode == 0, described.stderr
    schedule = json.loads(described.stdout)
    assert schedule["schedule"]["spec"]["interval"] == [{"interval": "3600s"}]
    assert schedule["schedule"]["action"]["startWorkflow"]["workflowType"]["name"] == "ReadinessWorkflow"
    assert int(schedule["info"]["actionCount"]) >= 1


def test_every_line_make_run_prints_works_pasted_as_printed(tmp_path):
    stack = MakeRun(tmp_path / "run")
    try:
        output = stack.until(READY)
        incidents = [re.match(r"incident (\w{8}) \((\S+)\): (\w+)\b", line) for line in output]
        (c2, c2_id, c2_status), (scan, scan_id, scan_status) = [m.groups() for m in incidents if m]
        assert (c2_status, scan_status) == ("awaiting_decision", "awaiting_decision")
        assert (short_id(c2_id), short_id(scan_id)) == (c2, scan)
        workload = json.loads((tmp_path / "run" / "workload.json").read_text())

        source, *rest = _printed_block(output)
        assert source == f"source {tmp_path / 'run' / 'demo.env'}"
        _readiness_was_shown_and_scheduled(output, source)
        commands = [line for line in rest if not line.startswith("#")]
        assert [line.split()[:2] for line in commands] == [
            [".venv/bin/irflow", verb] for verb in ("list", "show", "ingest", "approve", "watch", "reject")
        ]
        settings = _settings(source)
        ec2 = _ec2(settings)
        (quarantine,) = {group for groups in _groups(ec2, workload["instance_id"]) for group in groups}
        probed_groups = _groups(ec2, workload["other_instance_id"])
        assert not any(quarantine in groups for groups in probed_groups), "LOW: nothing contained before asking"
        # Decisions are signed with the approver's own keys (a profile in the stack's credentials file).
        approver = re.search(r"--profile (\S+)", commands[3]).group(1)
        assert "--as" not in " ".join(commands) and settings["IRFLOW_DECISIONS_REQUIRE_PROOF"] == "true"
        approvers = json.loads(settings["IRFLOW_APPROVERS"])
        (arn,) = [key for key in approvers if re.fullmatch(rf"arn:aws:iam::\d{{12}}:user/{approver}", key)]
        assert "approver" in approvers[arn]["roles"]
        named = _paste(source, f".venv/bin/irflow note {c2} --as {approver} 'a name alone'")
        assert named.returncode == 1 and "needs a proof" in named.stderr, named.stdout + named.stderr

        for line in commands:
            pasted = _paste(source, line)
            assert pasted.returncode == 0, f"{line}\n{pasted.stdout}{pasted.stderr}"
            shown, verb = pasted.stdout, line.split()[1]
            if verb == "list":  # in an 80-column terminal, both incidents by the ids the lines use
                rows = [row.split() for row in shown.splitlines() if row[:1].isalnum()]
                assert {row[0]: row[1] for row in rows if row[0] in (c2, scan)} == {
                    c2: "awaiting_decision",
                    scan: "awaiting_decision",
                }
                assert "…" not in shown and max(len(row.rstrip()) for row in shown.splitlines()) <= 80
            elif verb == "show":
                assert shown.splitlines()[0] == c2_id and f"Instance {workload['instance_id']}" in shown
                assert "awaiting_decision" in shown
            elif verb == "ingest":
                assert shown.startswith(f"joined running incident {c2_id} "), shown
            elif verb in ("approve", "reject"):
                assert shown.strip() == f"{verb} accepted"
            elif verb == "watch":
                assert shown.splitlines()[-1] == "ended: resolved"
                instance = ec2.describe_instances(InstanceIds=[workload["instance_id"]])["Reservations"][0]
                assert instance["Instances"][0]["State"]["Name"] == "stopped"

        ended = _paste(source, f".venv/bin/irflow watch {scan} --timeout 60 --json")
        assert json.loads(ended.stdout.splitlines()[-1])["status"] == "rolled_back", ended.stdout + ended.stderr
        assert _groups(ec2, workload["other_instance_id"]) == probed_groups, "the false positive was never contained"
        joined = json.loads(_paste(source, f".venv/bin/irflow show {c2} --json").stdout)
        assert joined["finding_deliveries"] == 2 and joined["status"] == "resolved"
        assert [(d["kind"], d["by"]) for d in joined["decisions"] if d["accepted"]] == [("approve", arn)]

        # The history holds ciphertext; `temporal workflow show` reads it only through the codec server.
        (endpoint,) = [line.rsplit(" ", 1)[-1] for line in output if line.startswith("started the codec server")]
        show = f"{BIN / 'temporal'} workflow show --address {settings['TEMPORAL_ADDRESS']} -w {c2_id.rsplit('-', 1)[0]}"
        sealed = _paste(source, f"{show} --output json")
        decoded = _paste(source, f"{show} --output json --codec-endpoint {endpoint}")
        assert sealed.returncode == decoded.returncode == 0, sealed.stderr + decoded.stderr
        encoding, data = _first_input(sealed.stdout)
        assert encoding == b"binary/irflow-aes256gcm-kms" and b"routing_reason" not in data
        encoding, data = _first_input(decoded.stdout)
        assert encoding == b"json/plain" and json.loads(data)["incident_id"] == c2_id
    finally:
        code = stack.stop()
    assert code == 0, "\n".join(stack.output)
    assert stack.output[-1] == "stopping the processes irflow started ..."
