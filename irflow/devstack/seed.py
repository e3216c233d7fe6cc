"""Seed the stand-in account for the containers: `python -m irflow.devstack.seed --settings-file /config/irflow.env`.

docker-compose.yml runs this once against the `aws` service (a moto server): it waits for the endpoint,
seeds the demo workload, deploys infra/findings-intake.yaml and makes the account ready (GuardDuty, a trail,
the worker's role: irflow/devstack/readiness.py), writes the IRFLOW_* settings the worker
and the listener need (evidence bucket and key, topics, approvers, the findings queue) as a dotenv file
that they read through IRFLOW_SETTINGS_FILE, and with --publish-sample puts a GuardDuty finding about
the demo instance on EventBridge, where the intake's rule queues it for the listener. It prints the
workload as JSON. Never point it at a real account: it creates resources there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import urlparse

import boto3

from activities.memory_document import ensure_capture_memory_document
from irflow.devstack.demo import DemoWorkload, sample_finding, seed_workload
from irflow.devstack.intake_stack import IntakeStack, publish_findings
from irflow.devstack.processes import wait_for_port
from irflow.devstack.readiness import make_ready


def prepare_account(region: str = "us-east-1") -> tuple[DemoWorkload, IntakeStack, dict[str, str]]:
    """The demo workload and the findings intake in the stand-in account, made ready as `irflow preflight` checks
    it (irflow/devstack/readiness.py), and the IRFLOW_* settings a worker and a listener need to answer for it
    (`make run` and the `seed` container both start here)."""
    workload = seed_workload(region)
    ensure_capture_memory_document(boto3.client("ssm", region_name=workload.region))  # irflow-CaptureMemory
    ready = make_ready(workload)
    return workload, ready.intake, {**workload.worker_environment(), **ready.settings}


def write_settings(path: Path, settings: dict[str, str]) -> None:
    """`export KEY='value'` lines: a dotenv file for IRFLOW_SETTINGS_FILE that a shell can also source."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in settings.items())
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)  # readers never see half a file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings-file", type=Path, required=True, help="where to write the IRFLOW_* settings")
    parser.add_argument("--publish-sample", action="store_true", help="publish a sample GuardDuty finding")
    parser.add_argument("--wait", type=float, default=60, help="seconds to wait for AWS_ENDPOINT_URL")
    args = parser.parse_args(argv)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint:
        print("error: AWS_ENDPOINT_URL is not set; irflow.devstack.seed only seeds a stand-in account", file=sys.stderr)
        return 2
    where = urlparse(endpoint)
    wait_for_port(where.port or (443 if where.scheme == "https" else 80), args.wait, host=where.hostname or "")
    workload, intake, settings = prepare_account()
    write_settings(args.settings_file, settings)
    if args.publish_sample:
        publish_findings([sample_finding(workload.instance_id, workload.account_id, workload.region)], workload.region)
    print(json.dumps({"workload": json.loads(workload.to_json()), "queue_url": intake.queue_url}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
