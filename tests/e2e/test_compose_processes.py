"""docker-compose.yml, run without Docker: every service's own command and environment, as processes.

No Docker engine runs here, so this starts what each container would run, from the compose file
itself: the Temporal dev server for `temporal` (the image's own `server start-dev`), then each built
service's command with its environment, in `depends_on` order, one-shot services to completion and the
rest as long-running processes (as many as `deploy.replicas` says). Only what a container network
provides is translated: service host names become 127.0.0.1 on free ports, and named volumes become
folders; `${VARIABLE:-default}` takes its default, as compose does with the variable unset. Services of a
profile (`production`) are not started: `docker compose up` starts only those without one. Nothing of the
test's own environment reaches the processes (no AWS_*, TEMPORAL_*, IRFLOW_*, OTEL_*), so the compose file
alone must wire them. The sample finding `seed` publishes must end contained,
and `jaeger` (stood in for by an OTLP/HTTP receiver) must get one trace from the listener's hand-over
of that finding to the worker's containment steps.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from irflow.devstack.processes import ProcessGroup, on_free_port, start_temporal_on_free_ports, wait_for_port
from irflow.models.incident import IncidentState, Status
from irflow.temporal_client import connect
from tests.support import REPO

pytestmark = pytest.mark.e2e


def _default_services(compose: dict) -> dict:
    """What `docker compose up` starts: the services without a profile, without their optional dependencies
    on profile services (`required: false`)."""
    services = {name: dict(service) for name, service in compose["services"].items() if not service.get("profiles")}
    for service in services.values():
        if "depends_on" in service:
            service["depends_on"] = {d: how for d, how in service["depends_on"].items() if d in services}
    return services


def _interpolate(value: str) -> str:
    """`${NAME:-default}` as compose reads it with NAME unset: this test sets no compose variables."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _order(services: dict) -> list[str]:
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        assert name not in path, f"depends_on cycle: {path + (name,)}"
        if name in done:
            return
        for dependency in services[name].get("depends_on", {}):
            visit(dependency, path + (name,))
        done.append(name)

    for name in services:
        visit(name)
    return done


def _one_shot(services: dict) -> set[str]:
    return {
        dependency
        for service in services.values()
        for dependency, how in service.get("depends_on", {}).items()
        if how.get("condition") == "service_completed_successfully"
    }


class _Translate:
    """What the container network and volumes provide, for processes on this machine."""

    def __init__(self, ports: dict[str, tuple[int, int]], volumes_root: Path) -> None:
        self.ports = ports  # service -> (port inside the network, free port here)
        self.volumes_root = volumes_root

    def text(self, value: str, mounts: dict[str, Path]) -> str:
        value = _interpolate(value)
        for service, (inside, here) in self.ports.items():
            value = value.replace(f"{service}:{inside}", f"127.0.0.1:{here}")
        for container_path, folder in mounts.items():
            if value == container_path or value.startswith(container_path + "/"):
                value = str(folder) + value[len(container_path) :]
        return value

    def mounts(self, service: dict) -> dict[str, Path]:
        out = {}
        for volume in service.get("volumes", []):
            name, container_path = volume.split(":")[:2]
            out[container_path] = self.volumes_root / name
            out[container_path].mkdir(parents=True, exist_ok=True)
        return out

    def argv(self, name: str, service: dict) -> list[str]:
        command, mounts = list(service["command"]), self.mounts(service)
        if name in self.ports and "--port" in command:  # a server listens on its free port here
            command[command.index("--port") + 1] = str(self.ports[name][1])
        if "--host" in command:
            command[command.index("--host") + 1] = "127.0.0.1"
        command = [self.text(part, mounts) for part in command]
        if command[0] == "python":
            return [sys.executable, *command[1:]]
        if command[0] == "irflow":
            return [sys.executable, "-m", "irflow.cli", *command[1:]]
        raise AssertionError(f"{name}: unexpected command {command}")

    def environment(self, service: dict) -> dict[str, str]:
        mounts = self.mounts(service)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TEMPORAL_", "IRFLOW_", "OTEL_"))}
        given = {k: self.text(str(v), mounts) for k, v in (service.get("environment") or {}).items()}
        return {**clean, **given}


class _OtlpReceiver(ThreadingHTTPServer):
    """Stands in for Jaeger's OTLP/HTTP port: keeps (service.name, span name, trace id) of what arrives."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append((attributes.get("service.name", ""), span.name, span.trace_id))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args) -> None:
                """Quiet: the test reads the spans, not an access log."""

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _published_port(service: dict) -> int:
    """The port a server listens on inside the network: its --port argument."""
    command = service["command"]
    return int(command[command.index("--port") + 1])


async def _awaiting_decision(
    address: str, workflow_prefix: str, running: dict[str, list[subprocess.Popen]], timeout: float = 90
) -> IncidentState:
    client = await connect(address=address)
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for name, processes in running.items():
            assert all(p.poll() is None for p in processes), f"{name} exited with {processes[0].returncode}"
        async for run in client.list_workflows(f"WorkflowId STARTS_WITH '{workflow_prefix}'"):
            try:
                state = await client.get_workflow_handle(run.id).query("current_state", result_type=IncidentState)
            except Exception:  # noqa: BLE001 (not picked up by a worker yet)
                continue
            if state.status == Status.AWAITING_DECISION:
                return state
        await asyncio.sleep(0.5)
    raise AssertionError(f"no incident for {workflow_prefix} awaits a decision after {timeout}s")


async def test_the_compose_services_run_as_processes_contain_the_sample_finding(tmp_path):
    services = _default_services(yaml.safe_load((REPO / "docker-compose.yml").read_text()))
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/temporal") and "start-dev" in temporal["command"]
    assert {"worker", "listener", "seed", "setup", "aws"} <= set(services)

    otlp = _OtlpReceiver()
    jaeger_inside = urlparse(services["worker"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert jaeger_inside.hostname == "jaeger" and "jaeger" in services
    ports = {
        "temporal": (7233, 0),  # filled in once the dev server is up
        "aws": (_published_port(services["aws"]), 0),  # filled in as it starts
        "jaeger": (jaeger_inside.port, otlp.server_address[1]),
    }
    translate = _Translate(ports, tmp_path / "volumes")
    group = ProcessGroup(tmp_path / "logs")
    outputs: dict[str, str] = {}
    started: dict[str, list[subprocess.Popen]] = {}
    try:
        for name in _order(services):
            service = services[name]
            if name == "temporal":
                temporal_port = start_temporal_on_free_ports(group, tmp_path / "temporal.db")
                ports["temporal"] = (7233, temporal_port)
                continue
            if name == "jaeger":  # the OTLP receiver above stands in for it
                continue
            argv, env = translate.argv(name, service), translate.environment(service)
            if name in _one_shot(services):
                done = await asyncio.to_thread(
                    subprocess.run, argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180
                )
                assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
                outputs[name] = done.stdout
                continue
            if name == "aws":  # a server, on a free port (picked again if another process takes it first)

                def start_aws(port: int, name: str = name, service: dict = service, env: dict = env) -> None:
                    ports[name] = (ports[name][0], port)
                    started[name] = [group.start(name, translate.argv(name, service), env=env)]
                    wait_for_port(port, 60, started[name][0])

                on_free_port(start_aws)
                continue
            replicas = service.get("deploy", {}).get("replicas", 1)
            started[name] = [group.start(f"{name}-{i}", argv, env=env) for i in range(replicas)]

        assert len(started["worker"]) >= 2, "workers scale out"
        seeded = json.loads(outputs["seed"].strip().splitlines()[-1])
        workload = seeded["workload"]
        prefix = f"ec2-{workload['account_id']}-{workload['region']}-{workload['instance_id']}"
        state = await _awaiting_decision(f"127.0.0.1:{temporal_port}", prefix, started)
        assert state.contained_at is not None and state.resource_id == workload["instance_id"]

        # what the analyst would check in the account: the instance's ENIs carry only the quarantine group
        ec2 = boto3.client(
            "ec2",
            endpoint_url=f"http://127.0.0.1:{ports['aws'][1]}",
            region_name=workload["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        interfaces = ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [workload["instance_id"]]}]
        )["NetworkInterfaces"]
        groups = {g["GroupName"] for eni in interfaces for g in eni["Groups"]}
        assert interfaces and len(groups) == 1 and "quarantine" in next(iter(groups)).lower()
        for name, processes in started.items():
            assert all(p.poll() is None for p in processes), f"{name} exited; see {group.log_dir}"
    finally:
        group.stop()  # SIGTERM: the worker and the listener export their last spans as they stop
        otlp.shutdown()
    assert len(started["listener"]) >= 2, "two listeners share the queue"
    # and their detection state: the seed names the DynamoDB table in the settings both read
    written = (tmp_path / "volumes" / "config" / "irflow.env").read_text()
    [table] = [line.split("=", 1)[1].strip("'") for line in written.splitlines() if "IRFLOW_STATE_TABLE=" in line]
    incidents_started = 0
    for n, process in enumerate(started["listener"]):
        listener_log = (tmp_path / "logs" / f"listener-{n}.log").read_text()
        assert process.returncode == 0, listener_log[-2000:]
        assert table and table in listener_log, f"listener-{n} does not use the shared state table {table}"
        stats = [json.loads(line) for line in listener_log.splitlines() if line.startswith('{"listener_stats"')]
        incidents_started += stats[-1]["listener_stats"]["started"]
    assert incidents_started == 1, "one of the listeners started the incident, and only one"

    # one trace: the listener's hand-over of the finding, then the worker's workflow and activities (an SQS
    # repeat delivery would be a second hand-over, one that joined: its trace has no workflow run)
    handed_over = {
        t for service, name, t in otlp.spans if service == "irflow-listener" and name == "irflow.submit_finding"
    }
    assert handed_over, "the listener exported its hand-over span"
    traces = [{n for s, n, t in otlp.spans if s == "irflow-worker" and t == trace_id} for trace_id in handed_over]
    needed = {"RunWorkflow:IncidentWorkflow", "RunActivity:isolate_network"}
    assert any(needed <= names for names in traces), traces
