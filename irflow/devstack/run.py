"""`make run`: the embedded default, from a fresh clone.

Starts the Temporal dev server (UI on :8233, state in .run/), a moto server as the AWS account with a
demo workload and the findings intake (infra/findings-intake.yaml: EventBridge rules into the
findings queue and its dead-letter queue), the worker and the finding listener (`starter.py`), then
publishes two sample GuardDuty findings with EventBridge `put_events`, so the demo walks the same path
as production: command and control from one web instance (HIGH: contained at once, then irflow asks
whether to eradicate) and a port probe on the other (LOW: irflow asks before containing). The account is made
ready as its administrator would (irflow/devstack/seed.py, irflow/devstack/readiness.py); once the worker polls,
`irflow schedule` creates the readiness schedule and `irflow preflight` shows its checks. Prints the UI
link and the `irflow` lines to paste in another terminal, in order, each working as printed; keeps
everything up until Ctrl-C or SIGTERM and stops what it started.

Decisions carry proof of who decided, as in production: the demo's approvers are IAM users with access keys
in a second moto server that checks SigV4 signatures (the worker verifies proofs there, as it would with
STS), their keys are profiles in the state folder's `aws-credentials`, and the printed lines decide with
`--profile alice`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3

from activities.aws import reset_clients
from irflow.cli.common import NotFound, incident_handle
from irflow.devstack.approvers import DemoApprover, approvers_setting, seed_approvers, write_credentials
from irflow.devstack.demo import DEMO_APPROVERS, sample_finding, sample_port_probe_finding
from irflow.devstack.intake_stack import publish_findings
from irflow.devstack.processes import (
    REPO,
    ProcessGroup,
    aws_environment,
    free_port,
    start_identity_moto_on_free_port,
    start_moto,
    start_temporal,
    wait_for_port,
)
from irflow.devstack.seed import prepare_account, write_settings
from irflow.intake.router import route
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Status, short_id
from irflow.models.settings import get_settings
from irflow.temporal_client import connect, ensure_search_attributes


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=REPO / ".run")
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--moto-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-when-ready", action="store_true", help="stop once the incident awaits a decision")
    return parser.parse_args()


async def _await_decision_point(client, workflow_id: str, deadline: float) -> IncidentState:
    handle = client.get_workflow_handle(workflow_id)
    while time.monotonic() < deadline:
        try:
            state = await handle.query("current_state", result_type=IncidentState)
            if state.status in (Status.AWAITING_DECISION, Status.ESCALATED) or state.status.is_final:
                return state
        except Exception:  # noqa: BLE001 (the worker may not have picked the workflow up yet)
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"incident {workflow_id} did not reach a decision point in time")


async def _await_short_id(client, state: IncidentState, deadline: float) -> None:
    """The printed lines name incidents by short id, which is found through Temporal's visibility store:
    wait until it lists the incident, so each line works the moment it is printed."""
    while time.monotonic() < deadline:
        try:
            await incident_handle(client, short_id(state.incident_id))
            return
        except NotFound:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"incident {state.incident_id} is not listed by Temporal's visibility store in time")


async def _await_ready(address: str, workflow_id: str, deadline: float) -> tuple[IncidentState, float]:
    """The incident at its decision point (and the monotonic time it was seen there), listed under its short id."""
    client = await connect(address=address)
    state = await _await_decision_point(client, workflow_id, deadline)
    reached = time.monotonic()
    await _await_short_id(client, state, deadline)
    return state, reached


def _publish(event: dict, region: str) -> str:
    """Onto EventBridge, as GuardDuty would; returns the workflow id of the incident it will reach."""
    publish_findings([event], region=region)
    return route(parse_guardduty(event).finding).incident_key


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
        codec_port = free_port()
        codec_endpoint = f"http://127.0.0.1:{codec_port}"
        start_temporal(group, args.temporal_port, args.ui_port, args.state_dir / "temporal.db", codec_endpoint)
        print(f"starting moto server (the AWS account) on 127.0.0.1:{moto_port} ...", flush=True)
        start_moto(group, moto_port)
        aws = aws_environment(moto_port)
        os.environ.update(aws)
        reset_clients()
        workload, intake, settings = prepare_account()
        (args.state_dir / "workload.json").write_text(workload.to_json())
        asyncio.run(_register_search_attributes(address))
        identity = f"http://127.0.0.1:{start_identity_moto_on_free_port(group)}"
        print(f"started the approvers' identity server (STS for decision proofs) at {identity}", flush=True)
        approvers = seed_approvers(identity, DEMO_APPROVERS, workload.region)
        credentials = args.state_dir / "aws-credentials"
        write_credentials(credentials, approvers)
        proofs = {
            "IRFLOW_APPROVERS": approvers_setting(approvers),
            "IRFLOW_DECISIONS_REQUIRE_PROOF": "true",
            "IRFLOW_PROOF_STS_ENDPOINT_URL": identity,
        }

        # Every client seals its Temporal payloads under a KMS key of the demo account; the UI decodes them
        # through the codec server, which answers the UI's origin only.
        payload_key = boto3.client("kms", region_name=workload.region).create_key(Description="irflow payloads")
        sealing = {
            "IRFLOW_PAYLOAD_KMS_KEY_ID": payload_key["KeyMetadata"]["KeyId"],
            "IRFLOW_CODEC_SERVER_ORIGINS": f"http://localhost:{args.ui_port},http://127.0.0.1:{args.ui_port}",
        }
        environment = {**aws, **settings, **proofs, **sealing, "TEMPORAL_ADDRESS": address}
        os.environ.update(sealing)
        get_settings.cache_clear()  # this process's own client (waiting for the incidents) seals too
        codec = [sys.executable, "-m", "irflow.cli", "codec-server", "--port", str(codec_port)]
        wait_for_port(codec_port, 30, group.start("codec-server", codec, env=environment))
        print(f"started the codec server for the Temporal UI at {codec_endpoint}", flush=True)
        env_file = args.state_dir / "demo.env"
        # Another terminal decides with the approvers' own keys: `--profile alice` reads them from here.
        write_settings(env_file, {**environment, "AWS_SHARED_CREDENTIALS_FILE": str(credentials)})
        worker_started = time.monotonic()
        group.start("worker", [sys.executable, "worker.py"], env=environment)
        group.start("listener", [sys.executable, "starter.py"], env=environment)

        event = sample_finding(workload.instance_id, workload.account_id, workload.region)
        (args.state_dir / "sample-finding.json").write_text(json.dumps(event, indent=2))
        workflow_id = _publish(event, workload.region)
        print(f"published a GuardDuty finding for {workload.instance_id} with EventBridge put_events", flush=True)
        deadline = time.monotonic() + 60
        state, reached = asyncio.run(_await_ready(address, workflow_id, deadline))
        elapsed = reached - worker_started
        # The second finding only once the first is measured: the time above is the first incident's alone.
        probe = sample_port_probe_finding(workload.other_instance_id, workload.account_id, workload.region)
        probe_id = _publish(probe, workload.region)
        print(f"published a GuardDuty finding for {workload.other_instance_id} with EventBridge put_events", flush=True)
        probed, _ = asyncio.run(_await_ready(address, probe_id, deadline))
        _show_readiness(environment)
        _print_ready(state, probed, workflow_id, args, env_file, elapsed, workload, intake, approvers)
        if args.exit_when_ready:
            print(json.dumps({"ready": True, "status": state.status, "seconds_since_worker_start": round(elapsed, 3)}))
            return 0 if state.status == probed.status == Status.AWAITING_DECISION else 1
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


def _show_readiness(environment: dict[str, str]) -> None:
    """`irflow schedule` (the readiness checks on a Temporal Schedule) and `irflow preflight` (its table), run as
    another terminal would, side by side, once the worker polls; what they print is shown here."""
    irflow = [sys.executable, "-m", "irflow.cli"]
    env = {**os.environ, **environment, "COLUMNS": str(shutil.get_terminal_size().columns)}
    running = [
        subprocess.Popen(
            [*irflow, command], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for command in ("schedule", "preflight")
    ]
    try:
        (scheduled, _), (table, _) = (process.communicate(timeout=120) for process in running)
    finally:
        for process in running:  # only a command that hung is still there: stopped by its pid
            if process.poll() is None:
                process.kill()
    print(f"\n{scheduled.strip()}\nreadiness now (irflow preflight):\n{table.rstrip()}", flush=True)


async def _register_search_attributes(address: str) -> None:
    client = await connect(address=address)
    await ensure_search_attributes(client)


def _print_ready(
    state: IncidentState,
    probed: IncidentState,
    workflow_id: str,
    args,
    env_file: Path,
    elapsed: float,
    workload,
    intake,
    approvers: list[DemoApprover],
) -> None:
    ec2 = boto3.client("ec2", region_name=workload.region)
    groups = [
        g["GroupId"]
        for eni in ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
        )["NetworkInterfaces"]
        for g in eni["Groups"]
    ]
    # Whoever the printed lines decide as must be an approver of this very configuration (demo.env): their
    # profile's keys sign the decision, and the worker records the ARN the identity server verifies.
    deciders = [a.name for a in approvers if "approver" in a.roles]
    you, c2, scan = deciders[0], short_id(state.incident_id), short_id(probed.incident_id)
    print(
        f"""
incident {c2} ({state.incident_id}): {state.status} ({elapsed:.2f}s after the worker started)
  {state.finding.type} on {workload.instance_id} ({state.severity}): contained at once;
  its ENIs now carry {sorted(set(groups))}
  evidence: {len(state.evidence)} object(s) in s3://{workload.evidence_bucket}/incidents/{state.incident_id}/
incident {scan} ({probed.incident_id}): {probed.status}
  {probed.finding.type} on {workload.other_instance_id} ({probed.severity}): irflow asks before containing

Temporal UI:  http://localhost:{args.ui_port}/namespaces/default/workflows/{workflow_id}
Findings queue: {intake.queue_url}  (dead letters: {intake.dead_letter_queue_url})

In another terminal, in this directory, paste these in order (approvers: {", ".join(deciders)}):
  source {env_file}
  .venv/bin/irflow list
  .venv/bin/irflow show {c2}
  # the same finding again: it joins incident {c2}
  .venv/bin/irflow ingest {args.state_dir / "sample-finding.json"}
  # {c2} is real: approve (signed with {you}'s own AWS keys), stop the instance, follow it to its end
  .venv/bin/irflow approve {c2} --profile {you} --eradicate stop --comment "confirmed"
  .venv/bin/irflow watch {c2}
  # {scan}, the port probe, is a false positive: reject it, nothing gets contained
  .venv/bin/irflow reject {scan} --profile {you} --reason "false positive"

Ctrl-C stops everything.""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
