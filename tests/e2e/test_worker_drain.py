"""A rolling restart, with real processes: SIGTERM reaches worker.py while one of its activities is inside an AWS
call. The worker stops taking work, lets the activity finish and report within IRFLOW_DRAIN_SECONDS, exits 0,
and the next worker carries the incident on. (The listener's side, SIGTERM while it holds messages:
tests/e2e/test_listener_processes.py.)"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.api.enums.v1 import EventType

from irflow.devstack.demo import sample_finding
from irflow.models.incident import IncidentState, Status
from irflow.temporal_client import connect, ensure_search_attributes

pytestmark = pytest.mark.e2e

DRAIN_SECONDS = 30
HELD_ACTION = "CreateSnapshot"  # evidence: `snapshot_volumes`, an activity the server hands to a worker
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class _SlowEc2(ThreadingHTTPServer):
    """EC2 for the worker (AWS_ENDPOINT_URL_EC2): forwards to moto, but holds every `HELD_ACTION` call until
    `release` is set, so the test knows the activity is mid-call and decides when the call returns."""

    def __init__(self, upstream: str) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name); EC2's query protocol is POST only
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if f"Action={HELD_ACTION}&".encode() in body:
                    proxy.held.set()
                    proxy.release.wait(120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, answer, content_type = response.status, response.read(), response.headers
                except urllib.error.HTTPError as error:  # an AWS error answer: passed on as it is
                    status, answer, content_type = error.code, error.read(), error.headers
                self.send_response(status)
                self.send_header("Content-Type", content_type.get("Content-Type", "text/xml"))
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                """Quiet: the test reads the worker's log, not the proxy's."""

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


async def _until(check, what: str, timeout: float = 90, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)


async def _history(client, workflow_id: str) -> list:
    return [event async for event in client.get_workflow_handle(workflow_id).fetch_history_events()]


def _activity_outcomes(events: list) -> dict[str, list[str]]:
    """Each activity type's outcomes in the history: `started#<attempt> by <worker>`, `completed by <worker>`,
    `failed`, `timed_out`, `canceled`. (The server shows an activity's outcome only once the workflow task that was
    running at the time is over.)"""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    outcomes: dict[str, list[str]] = {}
    for event in events:
        for outcome in ("started", "completed", "failed", "timed_out", "canceled"):
            field = f"activity_task_{outcome}_event_attributes"
            if event.HasField(field):
                attributes = getattr(event, field)
                entry = f"started#{attributes.attempt}" if outcome == "started" else outcome
                if outcome in ("started", "completed"):
                    entry += f" by {attributes.identity}"
                outcomes.setdefault(scheduled[attributes.scheduled_event_id], []).append(entry)
    return outcomes


async def test_sigterm_mid_activity_lets_it_complete_then_exits_0_and_the_next_worker_finishes(
    stack, account, tmp_path
):
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    ec2 = _SlowEc2(stack.aws["AWS_ENDPOINT_URL"])
    env = stack.env(**account.worker_environment(), IRFLOW_DRAIN_SECONDS=str(DRAIN_SECONDS))
    first_log = stack.group.log_dir / f"worker-drain-1-{account.instance_id}.log"
    first = stack.group.start(
        first_log.stem, [sys.executable, "worker.py"], env={**env, "AWS_ENDPOINT_URL_EC2": ec2.url}
    )
    try:
        workflow_id = _start_incident(stack, env, tmp_path, account.instance_id, account)

        assert await asyncio.to_thread(ec2.held.wait, 90), "the worker never reached the snapshot call"
        first.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # the call is still held: the worker stops polling (the SDK logs this line, then tells the server) with
        # the activity running
        await _until(lambda: _async("Beginning worker shutdown" in first_log.read_text()), "the worker to drain")
        # an incident that arrives now is left for the next worker
        later_id = _start_incident(stack, env, tmp_path, account.other_instance_id, account)
        ec2.release.set()
        code = await asyncio.to_thread(first.wait, DRAIN_SECONDS)
        took = time.monotonic() - signalled
    finally:
        ec2.release.set()
        if first.poll() is None:
            first.kill()
        ec2.shutdown()
    log = first_log.read_text()
    assert code == 0, log[-2000:]
    assert took < DRAIN_SECONDS, f"exited {took:.1f}s after SIGTERM: the drain waited out its whole grace period"
    assert "worker stopping" in log and "worker stopped" in log

    untouched = [e.event_type for e in await _history(client, later_id)]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED in untouched, untouched
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED not in untouched, "the draining worker took a new incident"
    await client.get_workflow_handle(later_id).terminate("only there to show the draining worker took no new work")

    second = stack.group.start(f"worker-drain-2-{account.instance_id}", [sys.executable, "worker.py"], env=env)
    state = await _until(lambda: _state(client, workflow_id, Status.AWAITING_DECISION), "the incident to be contained")
    assert state.contained_at is not None
    # what the Temporal UI shows for the incident: the snapshots were taken on the first attempt and reported by the
    # stopping worker, and no activity failed or timed out
    stopped = f"{first.pid}@{socket.gethostname()}"  # the SDK's worker identity
    outcomes = _activity_outcomes(await _history(client, workflow_id))
    assert outcomes.get("snapshot_volumes") == [f"started#1 by {stopped}", f"completed by {stopped}"], outcomes
    assert not [name for name, seen in outcomes.items() if {"failed", "timed_out", "canceled"} & set(seen)], outcomes
    approved = stack.irflow("approve", workflow_id, "--as", "alice", "--comment", "drained cleanly", env=env)
    assert approved.returncode == 0, approved.stderr
    final = await _until(lambda: _state(client, workflow_id, None), "the incident to finish")
    assert final.status == Status.RESOLVED
    outcomes = _activity_outcomes(await _history(client, workflow_id))
    assert not [name for name, seen in outcomes.items() if {"failed", "timed_out", "canceled"} & set(seen)], outcomes
    # stopped while Temporal is still there, its last activities (closing the loop) report before it exits
    second.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.wait, DRAIN_SECONDS) == 0


def _start_incident(stack, env: dict[str, str], tmp_path, instance_id: str, account) -> str:
    """`starter.py FILE` with the instance's sample finding; the incident's workflow id."""
    finding = tmp_path / f"{instance_id}.json"
    finding.write_text(json.dumps(sample_finding(instance_id, account.account_id, account.region)))
    started = stack.run("starter.py", str(finding), env=env)
    assert started.returncode == 0, started.stderr
    return started.stdout.split("(workflow ", 1)[1].split(")", 1)[0]


async def _state(client, workflow_id: str, wanted: Status | None) -> IncidentState | None:
    """The incident's state once it has `wanted` status (None: any final one)."""
    try:
        state = await client.get_workflow_handle(workflow_id).query("current_state", result_type=IncidentState)
    except Exception:  # noqa: BLE001 (no worker has picked it up yet)
        return None
    done = state.status.is_final if wanted is None else state.status == wanted
    return state if done else None


async def _async(value):
    return value
