"""What the listener's tests share: a findings queue with its dead-letter queue (moto in-process), sending to
it, reading it, and running a listener until a condition holds.

The helpers keep the leading underscore they had as private helpers of test_listener.py, so the tests that
moved out of it read exactly as before.
"""

from __future__ import annotations

import asyncio
import json

from irflow.intake.listener import FindingListener


def _findings_queue(sqs, dlq: str, name: str = "findings", visibility_timeout: int = 30) -> str:
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "25"}),
        },
    )["QueueUrl"]


def _send(sqs, queue: str, bodies: list) -> None:
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": b if isinstance(b, str) else json.dumps(b)}
            for i, b in enumerate(bodies[start : start + 10])
        ]
        assert not sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")


def _drain(sqs, queue: str) -> list[dict]:
    out = []
    while batch := sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    ).get("Messages", []):
        out += batch
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return out


def _depth(sqs, queue: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


async def _listen_until(listener: FindingListener, condition, timeout: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"timed out: {listener.stats.snapshot()}"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def _asff_access_key_finding(
    user_name: str,
    access_key_id: str,
    account_id: str = "123456789012",
    product_arn: str = "arn:aws:securityhub:us-east-1::product/aws/guardduty",
    finding_id: str = "asff-access-key-1",
) -> dict:
    """A Security Hub (ASFF) finding that an IAM user's access key was used from a known-bad address."""
    return {
        "SchemaVersion": "2018-10-08",
        "Id": f"arn:aws:securityhub:us-east-1:{account_id}:finding/{finding_id}",
        "ProductArn": product_arn,
        "GeneratorId": "irflow-test",
        "AwsAccountId": account_id,
        "Types": ["TTPs/Initial Access/UnauthorizedAccess:IAMUser-MaliciousIPCaller.Custom"],
        "CreatedAt": "2026-01-05T10:00:00Z",
        "UpdatedAt": "2026-01-05T10:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": f"API calls with {access_key_id} from a known malicious address",
        "Description": "An access key was used from a known malicious IP address.",
        "Resources": [
            {
                "Type": "AwsIamAccessKey",
                "Id": f"AWS::IAM::AccessKey:{access_key_id}",
                "Partition": "aws",
                "Region": "us-east-1",
                "Details": {"AwsIamAccessKey": {"PrincipalName": user_name, "PrincipalType": "IAMUser"}},
            }
        ],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }


def _securityhub_event(findings: list[dict], source: str = "aws.securityhub") -> dict:
    return {
        "version": "0",
        "id": "3a1b2c3d-0000-4000-8000-000000000001",
        "detail-type": "Security Hub Findings - Imported",
        "source": source,
        "account": findings[0]["AwsAccountId"],
        "region": "us-east-1",
        "time": "2026-01-05T10:05:00Z",
        "resources": [f["Id"] for f in findings],
        "detail": {"findings": findings},
    }


def _sns(topic_arn: str, message: dict) -> dict:
    """An SNS notification as an SQS subscription delivers it (raw delivery off)."""
    return {"Type": "Notification", "MessageId": "m-1", "TopicArn": topic_arn, "Message": json.dumps(message)}
