"""`make run`: the embedded default, from a fresh clone.

Starts the Temporal dev server (UI on :8233, state in .run/), a moto server as the AWS account with a
demo workload and the findings intake (infra/findings-intake.yaml: EventBridge rules into the
findings queue and its dead-letter queue), the worker and the finding listener (`starter.py`), then
publishes a sample GuardDuty finding with EventBridge `put_events`, so the demo walks the same path
as production. Prints the UI link and the `irflow approve` line, keeps everything up until Ctrl-C and
stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import boto3

from activities.aws import reset_clients
from irflow.devstack.demo import sample_finding
from irflow.devstack.intake_stack import publish_findings
from irflow.devstack.processes import REPO, ProcessGroup, aws_environment, free_port, start_moto, start_temporal
from irflow.devstack.seed import prepare_account, write_settings
from irflow.intake.router import route
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Status
from irflow.temporal_client import connect, ensure_search_attributes


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=REPO / ".run")
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--moto-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-when-ready", action="store_true", help="stop once the incident awaits a decision")
    return parser.parse_args()


async def _await_decision_point(workflow_id: str, address: str, timeout: float = 60) -> IncidentState:
    client = await connect(address=address)
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = await handle.query("current_state", result_type=IncidentState)
            if state.status in (Status.AWAITING_DECISION, Status.ESCALATED) or state.status.is_final:
                return state
        except Exception:  # noqa: BLE001 (the worker may not have picked the workflow up yet)
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"incident {workflow_id} did not reach a decision point within {timeout}s")


def main() -> int:
    args = _parse()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    moto_port = args.moto_port or free_port()
    address = f"127.0.0.1:{args.temporal_port}"
    group = ProcessGroup(args.state_dir / "logs")
    interrupted = False

    def on_signal(*_):
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print(f"starting Temporal dev server on {address} (UI http://localhost:{args.ui_port}) ...", flush=True)
        start_temporal(group, args.temporal_port, args.ui_port, args.state_dir / "temporal.db")
        print(f"starting moto server (the AWS account) on 127.0.0.1:{moto_port} ...", flush=True)
        start_moto(group, moto_port)
        aws = aws_environment(moto_port)
        os.environ.update(aws)
        reset_clients()
        workload, intake, settings = prepare_account()
        (args.state_dir / "workload.json").write_text(workload.to_json())
        asyncio.run(_register_search_attributes(address))

        environment = {**aws, **settings, "TEMPORAL_ADDRESS": address}
        env_file = args.state_dir / "demo.env"
        write_settings(env_file, environment)
        worker_started = time.monotonic()
        group.start("worker", [sys.executable, "worker.py"], env=environment)
        group.start("listener", [sys.executable, "starter.py"], env=environment)

        event = sample_finding(workload.instance_id, workload.account_id, workload.region)
        (args.state_dir / "sample-finding.json").write_text(json.dumps(event, indent=2))
        publish_findings([event], region=workload.region)
        workflow_id = route(parse_guardduty(event).finding).incident_key
        print(f"published a GuardDuty finding for {workload.instance_id} with EventBridge put_events", flush=True)
        state = asyncio.run(_await_decision_point(workflow_id, address))
        elapsed = time.monotonic() - worker_started
        _print_ready(state, workflow_id, args, env_file, elapsed, workload, intake)
        if args.exit_when_ready:
            print(json.dumps({"ready": True, "status": state.status, "seconds_since_worker_start": round(elapsed, 3)}))
            return 0 if state.status == Status.AWAITING_DECISION else 1
        while not interrupted:
            time.sleep(0.5)
            for name, process in group.processes:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see {group.log_dir / (name + '.log')}")
                    return 1
        return 0
    finally:
        print("stopping the processes irflow started ...", flush=True)
        group.stop()


async def _register_search_attributes(address: str) -> None:
    client = await connect(address=address)
    await ensure_search_attributes(client)


def _print_ready(
    state: IncidentState, workflow_id: str, args, env_file: Path, elapsed: float, workload, intake
) -> None:
    ec2 = boto3.client("ec2", region_name=workload.region)
    groups = [
        g["GroupId"]
        for eni in ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
        )["NetworkInterfaces"]
        for g in eni["Groups"]
    ]
    print(
        f"""
incident {state.incident_id}: {state.status} ({elapsed:.2f}s after the worker started)
  instance {workload.instance_id} is contained; its ENIs now carry {sorted(set(groups))}
  evidence: {len(state.evidence)} object(s) in s3://{workload.evidence_bucket}/incidents/{state.incident_id}/

Temporal UI:  http://localhost:{args.ui_port}/namespaces/default/workflows/{workflow_id}
Findings queue: {intake.queue_url}  (dead letters: {intake.dead_letter_queue_url})

In another terminal:
  source {env_file}
  .venv/bin/irflow show {workflow_id}
  .venv/bin/irflow approve {workflow_id} --as you@example.com --eradicate stop --comment "confirmed"
  .venv/bin/irflow reject {workflow_id} --as you@example.com --reason "false positive"
  .venv/bin/irflow ingest {args.state_dir / "sample-finding.json"}   # the same finding again: it joins

Ctrl-C stops everything.""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
