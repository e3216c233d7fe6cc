"""A burst through two listeners and two workers (real processes), a third of it repeats: one incident per
resource, each message counted once as a delivery, each distinct finding version absorbed once, nothing
dead-lettered, the queue drained. bench.load runs the full-size burst (1,000 findings over 200 resources)."""

from __future__ import annotations

import asyncio
import uuid

import boto3
import pytest

from bench.common import start_irflow_processes
from bench.intake import _queue
from bench.load import UNANSWERED, create_resources, dead_letter_queue, incidents, make_burst, queue_depth, send_burst
from irflow.temporal_client import connect, ensure_search_attributes

pytestmark = pytest.mark.e2e

FINDINGS, RESOURCES = 200, 40  # 30% of the findings repeat one: half redelivered, half updated


def test_a_burst_with_repeats_opens_one_incident_per_resource_and_absorbs_each_finding_once(stack, account):
    sqs = boto3.client("sqs")
    queue = _queue(sqs, f"load-{uuid.uuid4().hex[:8]}")
    resources = create_resources(account, RESOURCES, f"load{uuid.uuid4().hex[:6]}")
    burst = make_burst(account, resources, FINDINGS, 0.3)
    assert len(burst.bodies) == FINDINGS and len(burst.deliveries) == RESOURCES
    asyncio.run(_search_attributes(stack.temporal_address))
    first = len(stack.group.processes)
    start_irflow_processes(stack, account.worker_environment(), queue, workers=2, listeners=2)
    started = stack.group.processes[first:]
    try:
        send_burst(sqs, queue, burst.bodies)
        by_resource = asyncio.run(_settled(stack.temporal_address, burst, sqs, queue))
    finally:
        for _, process in started:  # ours alone: the module's servers stay up for the other tests
            process.terminate()
        for _, process in started:
            process.wait(timeout=30)

    assert not UNANSWERED, f"incidents whose workflow task failed: {UNANSWERED}"
    assert sorted(by_resource) == sorted(burst.deliveries), "one incident per resource named, and no other"
    assert all(len(states) == 1 for states in by_resource.values()), {
        r: len(s) for r, s in by_resource.items() if len(s) != 1
    }
    counted = {r: (s[0].finding_deliveries, s[0].absorbed_count()) for r, s in by_resource.items()}
    expected = {r: (burst.deliveries[r], len(burst.versions[r])) for r in burst.deliveries}
    assert counted == expected
    assert sum(d for d, _ in counted.values()) == FINDINGS
    assert queue_depth(sqs, dead_letter_queue(sqs, queue)) == 0, "a repeat was dead-lettered"
    assert queue_depth(sqs, queue) == 0


async def _settled(address: str, burst, sqs, queue: str, timeout: float = 60):
    """Poll until the queue is drained and the incidents have counted every message (or the deadline passes):
    then what they hold, as their `current_state` queries answer."""
    client = await connect(address=address)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        by_resource = await incidents(client, set(burst.deliveries))
        counted = sum(s.finding_deliveries for states in by_resource.values() for s in states)
        if counted >= len(burst.bodies) and queue_depth(sqs, queue) == 0:
            return by_resource
        if asyncio.get_running_loop().time() > deadline:
            return by_resource
        await asyncio.sleep(0.5)


async def _search_attributes(address: str) -> None:
    await ensure_search_attributes(await connect(address=address))
