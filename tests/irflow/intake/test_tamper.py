"""Tamper calls through the listener (SQS in moto, a real Temporal dev server): a call that may undo a containment
joins the running incident whose `IrflowGuarded` lists what it touched, and only that one; irflow's own call
changes nothing; a call on what no incident guards opens nothing and is finished; without Temporal it is held.

The incidents here are a stand-in workflow of the incident's type, started with `IrflowGuarded` already set: what
a contained incident publishes is the workflow's business, tested with it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from irflow.detection.tamper import tamper_finding
from irflow.intake import tamper
from irflow.intake.listener import FindingListener
from irflow.intake.tamper import guarded_query
from irflow.models.guarded import guard_handle
from irflow.models.incident import INCIDENT_WORKFLOW, FindingDelivery
from irflow.models.settings import IrflowSettings
from irflow.temporal_client import connect
from tests.irflow.intake.listener_support import _depth, _listen_until, _send
from tests.support import free_port
from workflows import search_attributes as sa

ACCOUNT = "123456789012"  # moto's: the account the listener answers for
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/hurried-admin"
RESPONDER = f"arn:aws:sts::{ACCOUNT}:assumed-role/irflow-responder/irflow-incident"


@workflow.defn(name=INCIDENT_WORKFLOW)
class GuardingIncident:
    """Stands in for a contained incident: it guards what it was started with and keeps what it is sent."""

    def __init__(self) -> None:
        self.deliveries: list[FindingDelivery] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def add_finding(self, delivery: FindingDelivery) -> None:
        self.deliveries.append(delivery)

    @workflow.query
    def received(self) -> list[FindingDelivery]:
        return self.deliveries


def _reactivation(key: str, caller: str = ADMIN, event_id: str | None = None) -> dict:
    """The EventBridge event of `aws iam update-access-key --status Active`."""
    return {
        "version": "0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": ACCOUNT,
        "region": "us-east-1",
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "AssumedRole", "arn": caller, "accountId": ACCOUNT},
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateAccessKey",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.20",
            "requestParameters": {"accessKeyId": key, "status": "Active", "userName": "mallory"},
            "responseElements": None,
            "eventID": event_id or str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "recipientAccountId": ACCOUNT,
        },
    }


async def _guarding(client: Client, task_queue: str, *handles: str):
    handle = await client.start_workflow(
        GuardingIncident.run,
        id=f"guarding-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.GUARDED, list(handles))]),
    )
    for _ in range(100):  # visibility follows the start a little later
        if handle.id in [w.id async for w in client.list_workflows(guarded_query(list(handles)))]:
            return handle
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never became visible as guarding {handles}")


def _key() -> str:
    return f"AKIA{uuid.uuid4().hex[:16].upper()}"


async def test_a_reactivated_key_joins_the_incident_that_guards_it_and_irflows_own_reactivation_does_not(
    dev_env, queues
):
    sqs, queue, dlq = queues
    client = dev_env.client
    key, other_key = _key(), _key()
    task_queue = f"tamper-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=task_queue, workflows=[GuardingIncident], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        guarding = await _guarding(client, task_queue, guard_handle(ACCOUNT, "access-key", key))
        bystander = await _guarding(client, task_queue, guard_handle(ACCOUNT, "access-key", other_key))
        # irflow's own undo (its responder role) first, then the hurried admin
        _send(sqs, queue, [_reactivation(key, caller=RESPONDER), _reactivation(key, event_id="admin-1")])
        listener = FindingListener(client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= 2 and _depth(sqs, queue) == 0)
        received = await guarding.query(GuardingIncident.received)
        assert await bystander.query(GuardingIncident.received) == []
    assert len({d.delivery_id for d in received}) == 1, "the admin's call, once; irflow's own, never"
    finding = received[0].finding
    assert finding.type == "irflow:Tamper/UpdateAccessKey" and finding.is_tamper
    assert finding.severity == "HIGH" and finding.actor_arn == ADMIN
    assert finding.resource.access_key_id == key and finding.account_id == ACCOUNT
    assert received[0].raw_packed and received[0].origin == queue
    stats = listener.stats
    assert stats.tamper_joined >= 1 and stats.tamper_unguarded == 0
    assert stats.started == 0 and stats.joined == 0 and stats.dead_lettered == 0
    assert listener.detector.own["UpdateAccessKey"] >= 1 and listener.detector.tamper["UpdateAccessKey"] >= 1
    assert _depth(sqs, dlq) == 0


async def test_a_key_reactivated_outside_any_incident_opens_nothing_and_is_finished(dev_env, queues, caplog):
    sqs, queue, dlq = queues
    client = dev_env.client
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    _send(sqs, queue, [_reactivation(_key())])
    listener = FindingListener(client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    with caplog.at_level("INFO", logger="irflow.listener"):
        await _listen_until(listener, lambda: listener.stats.deleted >= 1 and _depth(sqs, queue) == 0)
    stats = listener.stats
    assert stats.tamper_unguarded >= 1 and stats.tamper_joined == 0
    assert stats.started == 0 and stats.joined == 0 and stats.dead_lettered == 0 and _depth(sqs, dlq) == 0
    assert "no running incident guards it" in caplog.text
    await asyncio.sleep(1)  # what was started would be visible by now
    opened = [w async for w in client.list_workflows(f"WorkflowType = '{INCIDENT_WORKFLOW}' AND StartTime > '{since}'")]
    assert opened == []


async def test_without_temporal_a_tamper_call_is_held_not_dropped(queues):
    sqs, queue, dlq = queues
    _send(sqs, queue, [_reactivation(_key())])
    nowhere = await connect(address=f"127.0.0.1:{free_port()}", lazy=True)
    listener = FindingListener(nowhere, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    await _listen_until(listener, lambda: listener.stats.held >= 1, timeout=90)
    assert listener.stats.deleted == 0 and listener.stats.dead_lettered == 0 and listener.stats.outages == 1
    assert _depth(sqs, queue) == 1 and _depth(sqs, dlq) == 0


def test_the_query_lists_the_handles_and_refuses_what_could_break_it():
    handles = [guard_handle(ACCOUNT, "bucket", "payroll"), guard_handle(ACCOUNT, "access-key", "AKIA1")]
    query = guarded_query(handles)
    assert query.startswith(f"WorkflowType = '{INCIDENT_WORKFLOW}' AND ExecutionStatus = 'Running' AND ")
    assert query.endswith(f"IrflowGuarded IN ('{handles[0]}', '{handles[1]}')")
    for bad in ([], ["1:bucket:it's"], ["1:bucket:a\\"]):
        with pytest.raises(ValueError):
            guarded_query(bad)


async def test_an_incident_that_ended_since_the_query_is_passed_over(dev_env, monkeypatch):
    client = dev_env.client
    key = _key()
    task_queue = f"tamper-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=task_queue, workflows=[GuardingIncident], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = guard_handle(ACCOUNT, "access-key", key)
        ended, running = await _guarding(client, task_queue, handle), await _guarding(client, task_queue, handle)
        await ended.terminate("resolved")
        stale = [(ended.id, ended.result_run_id), (running.id, running.result_run_id)]

        async def as_seen_before_it_ended(_client, _handles):
            return stale  # visibility lags: the ended run still shows as running

        monkeypatch.setattr(tamper, "guarding_runs", as_seen_before_it_ended)
        tampered = tamper_finding(_reactivation(key)["detail"])
        delivery = await tamper.deliver_tamper(client, tampered, origin="test", delivery_id="d-1")
        assert delivery.reached == (running.id,) and delivery.handles == (handle,)
        [received] = await running.query(GuardingIncident.received)
    assert received.delivery_id == "d-1" and received.finding.id == tampered.finding.id
