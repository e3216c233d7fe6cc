"""A contained key turned back on, seen on the queue: the CloudTrail event of the call, put on the findings queue,
goes through the listener to the incident that guards the key, which turns it off again within seconds and names
who did it. The same call made by irflow's own principal changes nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import boto3

from irflow.intake.listener import FindingListener
from irflow.intake.tamper import guarded_query
from irflow.models import guarded as kinds
from irflow.models.guarded import guard_handle
from irflow.models.incident import Status
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.listener_support import _depth, _findings_queue, _send
from tests.support import running_worker, wait_for
from tests.workflows.test_guard import _key_status, _open_user_incident, _reactivate_key

RESPONDER_SESSION = "arn:aws:sts::{account}:assumed-role/irflow-responder/irflow-incident"


def _reactivation(workload, caller: str) -> dict:
    """The EventBridge event of `aws iam update-access-key --status Active` on the contained key."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": workload.account_id,
        "region": "us-east-1",
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "arn": caller, "accountId": workload.account_id},
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateAccessKey",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.20",
            "requestParameters": {
                "userName": workload.iam_user,
                "accessKeyId": workload.access_key_id,
                "status": "Active",
            },
            "responseElements": None,
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "recipientAccountId": workload.account_id,
        },
    }


async def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_reactivation_on_the_queue_is_undone_within_5_s_and_irflows_own_changes_nothing(dev_env, workload):
    client = dev_env.client
    sqs = boto3.client("sqs", region_name="us-east-1")
    name = f"findings-{uuid.uuid4().hex[:8]}"
    queue = _findings_queue(sqs, sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"], name=name)
    mallory = f"arn:aws:iam::{workload.account_id}:user/mallory"
    async with running_worker(client) as settings:
        _, handle = await _open_user_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        key = guard_handle(workload.account_id, kinds.ACCESS_KEY, workload.access_key_id)

        async def visible() -> bool:
            return handle.id in [w.id async for w in client.list_workflows(guarded_query([key]))]

        await _until(visible, 15, "the incident to be visible as guarding the key")
        listener = FindingListener(client, IrflowSettings(task_queue=settings.task_queue), [queue], wait_seconds=1)
        stop = asyncio.Event()
        listening = asyncio.create_task(listener.run(stop))
        try:
            # irflow's own principal turning the key on (as its undo would): the incident hears nothing of it.
            _send(sqs, queue, [_reactivation(workload, RESPONDER_SESSION.format(account=workload.account_id))])

            async def finished() -> bool:
                return listener.stats.deleted >= 1 and _depth(sqs, queue) == 0

            await _until(finished, 15, "irflow's own call to be read and finished")
            state = await wait_for(handle, lambda s: True)
            assert state.drifts == [] and state.finding_deliveries == 1
            assert listener.detector.own["UpdateAccessKey"] == 1 and listener.stats.tamper_joined == 0

            # Then someone else does it for real.
            _reactivate_key(workload)
            sent = time.monotonic()
            _send(sqs, queue, [_reactivation(workload, mallory)])
            state = await wait_for(handle, lambda s: bool(s.drifts) and _key_status(workload) == "Inactive", timeout=5)
            assert time.monotonic() - sent < 5
        finally:
            stop.set()
            await asyncio.wait_for(listening, 15)
        [drift] = state.drifts
        assert drift.step == "deactivate_access_key" and drift.trigger == "finding" and drift.holds_after
        assert [c.principal for c in drift.changed_by] == [mallory]
        assert state.status == Status.ESCALATED and state.escalations == [drift.at]
        assert listener.stats.tamper_joined == 1 and listener.stats.started == 0
        await handle.signal("reject", {"by": "bob", "reason": "test over"})
        await handle.result()
