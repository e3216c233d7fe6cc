"""The Temporal server stopped (SIGTERM) and started again on its database file in the middle of an incident: the
incident carries on where it was, and the worker and the listener, never restarted, reconnect on their own."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest

from irflow.devstack.demo import sample_finding
from irflow.devstack.intake_stack import deploy_intake_stack, publish_findings
from irflow.devstack.processes import ProcessGroup, free_port, start_temporal
from irflow.models.incident import Status
from irflow.temporal_client import connect, ensure_search_attributes
from tests.e2e.aws_proxy import AwsProxy
from tests.e2e.test_worker_kill import Account, assert_contained_once, reaches

pytestmark = pytest.mark.e2e


class RestartableTemporal:
    """A dev server of the test's own (the module's is shared), restarted on the same port and database file."""

    def __init__(self, state_dir) -> None:
        self.port = free_port()
        self.db = state_dir / "temporal.db"
        self.group = ProcessGroup(state_dir / "logs")
        self.restarts = 0
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        start_temporal(self.group, self.port, free_port(), self.db)

    def restart(self) -> None:
        """SIGTERM, wait for it to exit (ProcessGroup.stop), then the same server again."""
        self.group.stop(timeout=30)
        self.start()
        self.restarts += 1


@pytest.fixture
def temporal(tmp_path):
    server = RestartableTemporal(tmp_path)
    yield server
    server.group.stop()


@pytest.fixture
def intake(stack, monkeypatch):
    for name, value in stack.aws.items():
        monkeypatch.setenv(name, value)
    prefix = f"r{uuid.uuid4().hex[:8]}"
    return deploy_intake_stack(stack_name=f"{prefix}-intake", name_prefix=prefix, visibility_timeout=5)


async def _processes(stack, temporal, workload, intake, name: str, aws_endpoint: str | None = None):
    """A worker and a listener on `temporal`; the worker's AWS through `aws_endpoint` when given."""
    client = await connect(address=temporal.address)
    await ensure_search_attributes(client)
    env = stack.env(
        **workload.worker_environment(), TEMPORAL_ADDRESS=temporal.address, IRFLOW_QUEUE_URLS=intake.queue_url
    )
    worker_env = {**env, "AWS_ENDPOINT_URL": aws_endpoint} if aws_endpoint else env
    worker = stack.group.start(f"worker-{name}", [sys.executable, "worker.py"], env=worker_env)
    listener = stack.group.start(f"listener-{name}", [sys.executable, "starter.py", "--wait-seconds", "1"], env=env)
    return client, env, worker, listener


async def _incident_of(client, instance_id: str) -> str:
    async def find():
        async for execution in client.list_workflows("WorkflowType = 'IncidentWorkflow'"):
            if execution.id.endswith(instance_id):
                return execution.id
        return None

    async def poll():
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            found = await find()
            if found:
                return found
            await asyncio.sleep(0.25)
        raise AssertionError(f"no incident for {instance_id}")

    return await poll()


async def test_restarted_while_waiting_for_a_decision_the_approval_completes_it(stack, account, intake, temporal):
    client, env, worker, listener = await _processes(stack, temporal, account, intake, f"restart-{intake.stack_name}")
    aws = Account(account)
    publish_findings([sample_finding(account.instance_id, account.account_id, account.region)])
    workflow_id = await _incident_of(client, account.instance_id)
    await reaches(client, workflow_id, lambda s: s.status == Status.AWAITING_DECISION, "the decision", 90)

    temporal.restart()

    client = await connect(address=temporal.address)
    approved = stack.irflow("approve", workflow_id, "--as", "alice", "--eradicate", "stop", "--comment", "ok", env=env)
    assert approved.returncode == 0, approved.stderr
    final = await reaches(
        client, workflow_id, lambda s: s.status.is_final and s.report_keys, "eradication and the report", 90
    )
    assert final.status == Status.RESOLVED, final.failure_reason
    assert aws.instance()["State"]["Name"] == "stopped"
    assert len(aws.report_versions(final.incident_id)) == 3
    # The same listener and worker, never restarted, take the next finding: both reconnected by themselves.
    publish_findings([sample_finding(account.other_instance_id, account.account_id, account.region)])
    later = await _incident_of(client, account.other_instance_id)
    await reaches(client, later, lambda s: s.status == Status.AWAITING_DECISION, "the next incident's decision", 90)
    assert worker.poll() is None and listener.poll() is None


async def test_restarted_mid_containment_the_incident_is_contained_once(stack, account, intake, temporal):
    """The server goes away while the worker's first isolation call is on its way to AWS (the call waits for the
    server to be back), so the worker finishes that workflow task against a server that restarted meanwhile."""
    proxy = AwsProxy(stack.aws["AWS_ENDPOINT_URL"])
    try:
        name = f"restart-mid-{intake.stack_name}"
        client, env, worker, listener = await _processes(stack, temporal, account, intake, name, proxy.url)
        aws = Account(account)
        trap = proxy.trap("ModifyNetworkInterfaceAttribute", temporal.restart, before=False)
        publish_findings([sample_finding(account.instance_id, account.account_id, account.region)])
        assert await asyncio.to_thread(trap.fired.wait, 90), "the worker never isolated"
        client = await connect(address=temporal.address)
        workflow_id = await _incident_of(client, account.instance_id)
        state = await reaches(client, workflow_id, lambda s: s.status == Status.AWAITING_DECISION, "decision", 90)
        assert temporal.restarts == 1
        assert_contained_once(aws, state)
        assert state.contained_at is not None
        assert worker.poll() is None and listener.poll() is None
    finally:
        proxy.close()
