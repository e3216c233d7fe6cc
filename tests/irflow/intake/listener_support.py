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
