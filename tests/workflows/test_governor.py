"""The blast-radius governor: at most N automatic containments per account per hour (M fleet-wide), counted
on Temporal itself so the cap holds across any number of workers and listeners."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import boto3

from activities.governor import reserve
from irflow.devstack.demo import sample_finding
from irflow.intake.listener import FindingListener
from irflow.models.governor import (
    GovernorState,
    ReservationRequest,
    governor_id,
)
from irflow.models.incident import IncidentState, Status
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.listener_support import _depth, _findings_queue, _send
from tests.support import another_connection, notifications, quarantine_groups, running_worker, wait_for
from worker import build_worker


async def _reserve(client, queue: str, incident: str, account: str, per_account: int = 2, fleet: int = 3):
    request = ReservationRequest(
        incident_id=incident, account_id=account, per_account_limit=per_account, fleet_limit=fleet
    )
    return await reserve(client, queue, request)


async def test_the_governor_counts_per_account_and_fleet_wide_and_each_incident_once(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        queue = settings.task_queue
        assert (await _reserve(client, queue, "a1", "111111111111")).granted
        again = await _reserve(client, queue, "a1", "111111111111")
        assert again.granted and again.account_count == 1, "a retried reservation is counted once"
        assert (await _reserve(client, queue, "a2", "111111111111")).granted
        third = await _reserve(client, queue, "a3", "111111111111")
        assert not third.granted and "account 111111111111" in third.reason and third.account_count == 2
        assert (await _reserve(client, queue, "b1", "222222222222")).granted
        fleet = await _reserve(client, queue, "b2", "222222222222")
        assert not fleet.granted and "across all accounts" in fleet.reason and fleet.fleet_count == 3
        held = await client.get_workflow_handle(governor_id(queue)).query("reservations", result_type=GovernorState)
        assert sorted(r.incident_id for r in held.reservations) == ["a1", "a2", "b1"]


def _instances(workload, count: int) -> list[str]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    made = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=count,
        MaxCount=count,
        InstanceType="t3.micro",
        SubnetId=workload.subnet_ids[0],
        SecurityGroupIds=[workload.web_group_id],
    )["Instances"]
    return [i["InstanceId"] for i in made]


def _isolated(workload, instance_id: str) -> bool:
    """Every ENI of the instance carries only the quarantine group."""
    quarantine = {g["GroupId"] for g in quarantine_groups(workload)}
    enis = boto3.client("ec2", region_name=workload.region).describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    return bool(enis) and all({g["GroupId"] for g in e["Groups"]} <= quarantine for e in enis)


async def test_with_a_cap_of_three_five_instances_three_are_isolated_and_two_wait(dev_env, workload):
    """Five HIGH findings on the findings queue, two listeners reading it, two workers on one task queue."""
    client = dev_env.client
    instances = _instances(workload, 5)
    sqs = boto3.client("sqs", region_name=workload.region)
    dlq = sqs.create_queue(QueueName="governor-dlq")["QueueUrl"]
    queue = _findings_queue(sqs, dlq, name="governor-findings")
    _send(sqs, queue, [sample_finding(i, workload.account_id, workload.region, severity=8.0) for i in instances])
    async with running_worker(client, max_auto_containments_per_hour=3, capture_memory=False) as settings:
        second = IrflowSettings(**{**settings.model_dump(), "task_queue": settings.task_queue})
        # A second worker process would have its own connection: one client runs one worker per queue.
        other = await another_connection(client)
        with ThreadPoolExecutor(max_workers=second.activity_threads) as executor:
            async with build_worker(other, second, executor, debug_mode=True):
                listeners = [FindingListener(c, settings, queue_urls=[queue], wait_seconds=1) for c in (client, other)]
                stop = asyncio.Event()
                running = [asyncio.create_task(listener.run(stop)) for listener in listeners]
                try:
                    await _until(lambda: sum(x.stats.deleted for x in listeners) >= 5 and _depth(sqs, queue) == 0)
                finally:
                    stop.set()
                    await asyncio.wait_for(asyncio.gather(*running), 15)
                # (which listener took which message is SQS's choice: the count holds whichever did)
                held_so_far: list[dict] = []
                handles = [
                    client.get_workflow_handle(
                        f"ec2-{workload.account_id}-{workload.region}-{i}", result_type=IncidentState
                    )
                    for i in instances
                ]
                states = await asyncio.gather(
                    *(wait_for(h, lambda s: s.status == Status.AWAITING_DECISION, timeout=90) for h in handles)
                )
                contained = [s for s in states if s.contained_at is not None]
                waiting = [s for s in states if s.contained_at is None]
                assert len(contained) == 3 and len(waiting) == 2
                assert all(s.pending_decision.kind == "containment" for s in waiting)
                assert all(any("blast-radius cap reached" in r for r in s.plan_reasons) for s in waiting)
                by_instance = {s.resource_id: s for s in states}
                assert sorted(_isolated(workload, i) for i in instances) == [False, False, True, True, True]
                assert all(_isolated(workload, i) == (by_instance[i].contained_at is not None) for i in instances)
                # The team is told why those two wait (notifications go out in order, in the background).
                await _until(lambda: len(_held(workload, held_so_far)) >= 2)
                assert {m["subject"] for m in held_so_far} == {
                    f"irflow: automatic containment held for {s.resource_id}" for s in waiting
                }
                assert all("blast-radius cap reached" in m["message"] for m in held_so_far)
                for handle in handles:
                    await handle.signal("reject", {"by": "alice", "reason": "test over"})
                outcomes = await asyncio.gather(*(h.result() for h in handles))
                assert {o.status for o in outcomes} == {Status.ROLLED_BACK}


def _held(workload, seen: list[dict]) -> list[dict]:
    """The "containment held" messages published so far, gathered into `seen`."""
    seen += [m for m in notifications(workload) if "containment held" in (m["subject"] or "")]
    return seen


async def _until(condition, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
