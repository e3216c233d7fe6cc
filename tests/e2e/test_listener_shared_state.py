"""Two listener processes sharing the intake stack's state table (IRFLOW_STATE_TABLE): a burst of secret reads split
between them (one reads three in a CloudTrail log file S3 announces, the other three as EventBridge delivers them),
each seeing too few to alert alone, opens exactly one incident with exactly one finding."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import boto3
import pytest

from irflow.devstack.demo import sample_cloudtrail_event
from irflow.devstack.intake_stack import deploy_intake_stack
from irflow.models.incident import FindingDelivery, IncidentInput
from irflow.temporal_client import connect, ensure_search_attributes

pytestmark = pytest.mark.e2e

SECRETS_BURST = "irflow.cloudtrail.secrets-burst"


@pytest.fixture
def intake(stack, monkeypatch):
    for name, value in stack.aws.items():
        monkeypatch.setenv(name, value)
    prefix = f"s{uuid.uuid4().hex[:8]}"
    return deploy_intake_stack(stack_name=f"{prefix}-intake", name_prefix=prefix, visibility_timeout=5)


def _second_queue(intake) -> str:
    """A findings queue of its own for the second listener, dead-lettering where the stack's does."""
    redrive = json.dumps({"deadLetterTargetArn": intake.dead_letter_queue_arn, "maxReceiveCount": 25})
    return boto3.client("sqs").create_queue(
        QueueName=f"{intake.stack_name}-second", Attributes={"VisibilityTimeout": "5", "RedrivePolicy": redrive}
    )["QueueUrl"]


def _secret_read(account, n: int) -> dict:
    """The EventBridge event CloudTrail emits for one GetSecretValue by the demo user."""
    event = sample_cloudtrail_event(account, "GetSecretValue", source="secretsmanager.amazonaws.com", read_only=True)
    event["id"] = str(uuid.uuid4())
    event["detail"].update(
        eventID=f"ev-secret-{n}-{uuid.uuid4().hex[:8]}",
        eventTime=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        requestParameters={"secretId": f"prod/db-{n}"},
    )
    return event


def _log_file(account, records: list[dict]) -> str:
    """A CloudTrail log file holding `records` in a bucket, and the notification S3 sends the queue about it."""
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = f"trail-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    key = f"AWSLogs/{account.account_id}/CloudTrail/us-east-1/{bucket}.json.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "us-east-1"}
    return json.dumps({"Records": [{**record, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]})


def _depth(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def _closing_lines(stack, log_name: str) -> tuple[dict, str]:
    """The listener's printed stats and its detection summary line, from its log."""
    log = (stack.group.log_dir / f"{log_name}.log").read_text()
    stats = json.loads([line for line in log.splitlines() if line.startswith('{"listener_stats"')][-1])
    detection = [line for line in log.splitlines() if "detection: " in line and " event(s); alerts " in line][-1]
    return stats["listener_stats"], detection


async def _eventually(check, timeout: float = 30, interval: float = 0.25):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(interval)
    return result


async def test_a_secrets_burst_split_between_two_listeners_opens_one_incident(stack, account, intake):
    assert intake.state_table_name, "the intake stack declares the listeners' state table"
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    queues = [intake.queue_url, _second_queue(intake)]
    names = [f"listener-shared-{n}-{intake.stack_name}" for n in range(2)]
    listeners = [
        stack.group.start(
            name,
            [sys.executable, "starter.py", "--wait-seconds", "1"],
            env=stack.env(IRFLOW_QUEUE_URLS=queue, IRFLOW_STATE_TABLE=intake.state_table_name),
        )
        for name, queue in zip(names, queues, strict=True)
    ]
    sqs = boto3.client("sqs")
    # three distinct secrets each: below the rule's five, for either listener alone
    sqs.send_message(
        QueueUrl=queues[0], MessageBody=_log_file(account, [_secret_read(account, n)["detail"] for n in range(3)])
    )
    for n in range(3, 6):
        sqs.send_message(QueueUrl=queues[1], MessageBody=json.dumps(_secret_read(account, n)))

    async def handled():
        return all(_depth(queue) == 0 for queue in queues)

    await _eventually(handled)
    assert [_stop(listener) for listener in listeners] == [0, 0]

    closing = [_closing_lines(stack, name) for name in names]
    assert [stats["received"] for stats, _ in closing] == [1, 3], "the burst really was split"
    assert [stats["log_records"] for stats, _ in closing] == [3, 0]
    assert sum(stats["started"] + stats["joined"] for stats, _ in closing) == 1
    assert sum(f"'{SECRETS_BURST}': 1" in detection for _, detection in closing) == 1
    assert all("'irflow.cloudtrail.secrets-burst': 2" not in detection for _, detection in closing)

    incidents = [w async for w in client.list_workflows("WorkflowType = 'IncidentWorkflow'")]
    assert len(incidents) == 1, [w.id for w in incidents]
    findings = await _delivered_findings(client, incidents[0].id)
    assert len(findings) == 1, "one finding: signal-with-start hands it over once"
    [finding] = findings.values()
    assert finding.type == "CredentialAccess:IAMUser/SecretsBurst"
    assert finding.resource.access_key_id == account.access_key_id


async def _delivered_findings(client, workflow_id: str) -> dict:
    """The findings an incident received (its start and its add_finding signals), by id, read from its history."""
    found = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (started,) = await client.data_converter.decode(payloads, [IncidentInput])
            found[started.finding.id] = started.finding
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name == "add_finding":
                (delivery,) = await client.data_converter.decode(attributes.input.payloads, [FindingDelivery])
                found[delivery.finding.id] = delivery.finding
    return found
