"""Trusted sources only, through the real listener (SQS in moto, a Temporal dev server, a worker): a finding
from an untrusted product, about an account irflow does not answer for, bare from an unknown sender, or in an
unlisted topic's envelope is dead-lettered with its reason and changes nothing (the access key it names stays
Active, no incident starts); the same finding from a trusted product, account, sender or topic is contained."""

from __future__ import annotations

import asyncio
import json
import uuid

import boto3
import pytest
from moto.sqs.models import DEFAULT_SENDER_ID

from irflow.devstack.demo import sample_access_key_finding
from irflow.intake.listener import FindingListener, ListenerConfigurationError
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.listener_support import (
    _asff_access_key_finding,
    _depth,
    _drain,
    _listen_until,
    _securityhub_event,
    _send,
    _sns,
)
from tests.support import running_worker

GUARDDUTY_PRODUCT = "arn:aws:securityhub:us-east-1::product/aws/guardduty"
OTHER_ACCOUNT = "210987654321"
UNLISTED_TOPIC = "arn:aws:sns:us-east-1:123456789012:anyone-may-publish"
TRUSTED_TOPIC = "arn:aws:sns:us-east-1:123456789012:guardduty-findings"


def _user() -> tuple[str, str]:
    """A fresh IAM user with an active access key: each test's incident is its own."""
    iam = boto3.client("iam")
    name = f"trust-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    return name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]


def _key_status(user: str, key: str) -> str:
    keys = boto3.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in keys}[key]


async def _listen_to(client, settings: IrflowSettings, sqs, queue: str, body: dict) -> FindingListener:
    """One message on the queue, one listener until it is finished (deleted)."""
    _send(sqs, queue, [body])
    listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
    await _listen_until(listener, lambda: listener.stats.deleted >= 1 and _depth(sqs, queue) == 0)
    return listener


async def _assert_refused(client, settings, sqs, queue, dlq, body, code: str, named: str, user: str, key: str):
    listener = await _listen_to(client, settings, sqs, queue, body)
    [dead] = _drain(sqs, dlq)
    attributes = dead["MessageAttributes"]
    assert attributes["irflow-code"]["StringValue"] == code
    assert named in attributes["irflow-reason"]["StringValue"]
    assert json.loads(dead["Body"]) == body, "dead-lettered as it came"
    stats = listener.stats
    assert stats.rejected_by_code == {code: 1} and stats.dead_lettered == 1
    assert stats.started == stats.joined == 0, "no incident started or joined"
    assert [
        w
        async for w in client.list_workflows(
            f"WorkflowType = 'IncidentWorkflow' AND TaskQueue = '{settings.task_queue}'"
        )
    ] == []
    assert _key_status(user, key) == "Active"


async def _assert_contained(client, settings, sqs, queue, dlq, body, user: str, key: str):
    listener = await _listen_to(client, settings, sqs, queue, body)
    assert listener.stats.started == 1 and listener.stats.dead_lettered == 0 and _depth(sqs, dlq) == 0
    deadline = asyncio.get_running_loop().time() + 30
    while _key_status(user, key) != "Inactive":
        assert asyncio.get_running_loop().time() < deadline, "the trusted finding's key was not deactivated"
        await asyncio.sleep(0.1)
    async for incident in client.list_workflows(
        f"WorkflowType = 'IncidentWorkflow' AND TaskQueue = '{settings.task_queue}'"
    ):
        await client.get_workflow_handle(incident.id).terminate(reason="test over")


async def test_a_security_hub_finding_from_an_untrusted_product_is_refused(dev_env, workload, queues):
    sqs, queue, dlq = queues
    user, key = _user()
    default_product = f"arn:aws:securityhub:us-east-1:{workload.account_id}:product/{workload.account_id}/default"
    imported = _asff_access_key_finding(user, key, workload.account_id, product_arn=default_product)
    from_guardduty = _asff_access_key_finding(user, key, workload.account_id, product_arn=GUARDDUTY_PRODUCT)
    async with running_worker(dev_env.client) as settings:
        await _assert_refused(
            dev_env.client, settings, sqs, queue, dlq, _securityhub_event([imported]), "untrusted_source",
            default_product, user, key,
        )  # fmt: skip
        await _assert_contained(
            dev_env.client, settings, sqs, queue, dlq, _securityhub_event([from_guardduty]), user, key
        )


async def test_a_finding_about_an_account_irflow_does_not_answer_for_is_refused(dev_env, workload, queues):
    sqs, queue, dlq = queues
    user, key = _user()
    elsewhere = sample_access_key_finding(user, key, OTHER_ACCOUNT, finding_id="1" * 32)
    here = sample_access_key_finding(user, key, workload.account_id, finding_id="2" * 32)
    async with running_worker(dev_env.client) as settings:  # IRFLOW_ACCOUNTS unset: its credentials' account
        assert not settings.accounts
        await _assert_refused(
            dev_env.client, settings, sqs, queue, dlq, elsewhere, "untrusted_account", OTHER_ACCOUNT, user, key
        )
        await _assert_contained(dev_env.client, settings, sqs, queue, dlq, here, user, key)


async def test_a_bare_finding_from_an_unknown_sender_is_refused(dev_env, workload, queues):
    sqs, queue, dlq = queues
    user, key = _user()
    bare = sample_access_key_finding(user, key, workload.account_id)["detail"]  # no EventBridge event around it
    async with running_worker(dev_env.client) as settings:
        await _assert_refused(
            dev_env.client, settings, sqs, queue, dlq, bare, "untrusted_source", DEFAULT_SENDER_ID, user, key
        )
        trusting = settings.model_copy(update={"trusted_senders": [DEFAULT_SENDER_ID]})  # moto's every sender
        await _assert_contained(dev_env.client, trusting, sqs, queue, dlq, bare, user, key)


async def test_an_sns_envelope_from_an_unlisted_topic_is_refused(dev_env, workload, queues):
    sqs, queue, dlq = queues
    user, key = _user()
    event = sample_access_key_finding(user, key, workload.account_id)
    async with running_worker(dev_env.client, trusted_topic_arns=[TRUSTED_TOPIC]) as settings:
        await _assert_refused(
            dev_env.client, settings, sqs, queue, dlq, _sns(UNLISTED_TOPIC, event), "untrusted_source",
            UNLISTED_TOPIC, user, key,
        )  # fmt: skip
        await _assert_contained(dev_env.client, settings, sqs, queue, dlq, _sns(TRUSTED_TOPIC, event), user, key)


async def test_a_listener_that_cannot_tell_its_accounts_does_not_start(dev_env, queues):
    _, queue, _ = queues
    settings = IrflowSettings(accounts_from_organization=True, task_queue="unused")  # moto: no organization
    listener = FindingListener(dev_env.client, settings, queue_urls=[queue], wait_seconds=1)
    with pytest.raises(ListenerConfigurationError, match="IRFLOW_ACCOUNTS"):
        await listener.run(asyncio.Event())
    assert listener.stats.received == 0
