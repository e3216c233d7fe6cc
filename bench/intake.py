"""Intake throughput: findings per second from the queue to a started (or joined) incident.

A moto server (the AWS account) and a Temporal dev server run as processes; the findings queue is
preloaded with N GuardDuty EventBridge events, then the listener drains it. Two mixes are measured,
0 % and 50 % duplicates (half the messages repeat a resource already in the batch, so they join
instead of start). The baseline, measured in the same run on the same queue server, is a bare drain:
the same receive/delete loop with the same concurrency and no parsing, routing or Temporal.

    .venv/bin/python -m bench.intake [--findings 400] [--batches-in-flight 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3

from bench.common import process_stack
from irflow.devstack.demo import sample_finding
from irflow.intake.listener import FindingListener
from irflow.models.settings import IrflowSettings
from irflow.temporal_client import exit_now
from tests.data import CORPORA


def _queue(sqs, name: str) -> str:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "25"})},
    )["QueueUrl"]


CLOUDTRAIL = CORPORA / "cloudtrail" / "invictus_stream.jsonl"


def _cloudtrail_bodies(count: int) -> list[str]:
    """EventBridge "AWS API Call via CloudTrail" events around real records labelled as other activity: what
    the detection path mostly receives (no alert, so no Temporal call)."""
    records = [json.loads(line) for line in CLOUDTRAIL.open() if line.strip()]
    other = [r["event"] for r in records if not r["expected"]]
    return [
        json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.cloudtrail",
                "account": "123456789012",
                "region": "us-east-1",
                "detail": other[n % len(other)],
            }
        )
        for n in range(count)
    ]


def _bodies(count: int, duplicates: float | None) -> list[str]:
    if duplicates is None:
        return _cloudtrail_bodies(count)
    distinct = max(1, round(count * (1 - duplicates)))
    run = uuid.uuid4().hex[:6]
    instances = [f"i-{run}{n:011x}" for n in range(distinct)]
    return [json.dumps(sample_finding(instances[n % distinct], finding_id=uuid.uuid4().hex)) for n in range(count)]


def _preload(sqs, queue: str, count: int, duplicates: float | None) -> None:
    bodies = _bodies(count, duplicates)
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        )


def _bare_drain(sqs, queue: str, count: int, pollers: int) -> float:
    done = 0
    started = time.perf_counter()

    def poll() -> None:
        nonlocal done
        while done < count:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if messages:
                entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
                deleted = sqs.delete_message_batch(QueueUrl=queue, Entries=entries).get("Successful", [])
                done += len(deleted)  # after the call: `done +=` reads `done` first, and the call releases the GIL

    with ThreadPoolExecutor(pollers) as executor:
        list(executor.map(lambda _: poll(), range(pollers)))
    return time.perf_counter() - started


class _MemoryQueue:
    """Stands in for SQS to measure the listener itself: preloaded messages, free deletes."""

    def __init__(self, bodies: list[str]):
        self._messages = [{"MessageId": str(n), "ReceiptHandle": str(n), "Body": b} for n, b in enumerate(bodies)]

    def get_queue_attributes(self, **_):
        return {"Attributes": {"RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:r:1:dlq"})}}

    def get_queue_url(self, **_):
        return {"QueueUrl": "memory://dlq"}

    def receive_message(self, **_):
        batch, self._messages = self._messages[:10], self._messages[10:]
        if not batch:
            time.sleep(0.05)
        return {"Messages": batch}

    def delete_message_batch(self, Entries, **_):  # noqa: N803 (boto3's parameter name)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


async def _listener_drain(client, queue: str, count: int, pollers: int, sqs=None) -> tuple[float, dict]:
    settings = IrflowSettings(task_queue=f"bench-{uuid.uuid4().hex[:6]}", listener_batches_in_flight=pollers)
    listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1, sqs=sqs)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(listener.run(stop))
    while listener.stats.deleted < count:  # noqa: ASYNC110 (polling a counter is the measurement)
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed, listener.stats.snapshot()


async def main(count: int, pollers: int) -> None:
    async with process_stack() as stack:
        client = stack.client
        sqs = boto3.client("sqs")
        print(f"{count} findings per run, {pollers} receive batches in flight, moto server + Temporal dev server")
        rows = []
        for label, duplicates in (("0% duplicates", 0.0), ("50% duplicates", 0.5), ("CloudTrail events", None)):
            baseline_queue = _queue(sqs, f"base-{uuid.uuid4().hex[:6]}")
            _preload(sqs, baseline_queue, count, duplicates)
            baseline = _bare_drain(sqs, baseline_queue, count, pollers)
            queue = _queue(sqs, f"bench-{uuid.uuid4().hex[:6]}")
            _preload(sqs, queue, count, duplicates)
            elapsed, stats = await _listener_drain(client, queue, count, pollers)
            memory = _MemoryQueue(_bodies(count, duplicates))
            core_elapsed, core_stats = await _listener_drain(client, "memory://q", count, pollers, sqs=memory)
            rows.append((label, count / baseline, count / elapsed, stats, count / core_elapsed, core_stats))
        for label, base_rate, rate, stats, core_rate, _ in rows:
            print(
                f"{label:17} through moto SQS: listener {rate:6.1f} msgs/s, bare drain {base_rate:6.1f} "
                f"msgs/s (ratio {rate / base_rate:.2f}); listener alone (in-memory queue): "
                f"{core_rate:6.1f} msgs/s; started {stats['started']}, joined {stats['joined']}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--findings", type=int, default=400)
    parser.add_argument("--batches-in-flight", type=int, default=4)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.findings, arguments.batches_in_flight))
    exit_now(0)  # the SDK's runtime threads can crash interpreter teardown (see exit_now)
