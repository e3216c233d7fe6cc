"""Latency: a GuardDuty attack sequence enters the queue → every resource it names is contained (issue 15).

The sequence (`irflow.devstack.demo_sequence`, the documented shape of examples/findings/attack-sequence.json)
names a fresh demo instance (two ENIs, an Auto Scaling group, a target group) and its IAM user's leaked access key.
It is put on the findings queue, and the bench polls the account from outside until both are contained: every ENI
of the instance carries only the quarantine group, and the key is Inactive. The parent incident contains nothing
itself: it opens one incident per resource (the fan-out), and each child's playbook contains its resource. From the
incidents' own records, also: the parent received -> its children received (the fan-out itself), and each side's
slower incident from received to every containment step done.

Baseline, in the same run on the same servers: the same two resources of another fresh workload arriving as two
ordinary GuardDuty findings (an EC2 finding and an access-key finding, `demo.sample_finding` and
`demo.sample_access_key_finding`), put on the queue at the same moment (one SendMessageBatch), watched by the same
poller. The ratio of the medians is what the parent's fan-out costs; which of the two goes first alternates from
round to round (moto's state grows), and each round's incidents are closed before the next measurement.
Goals: issue 14's (`print_goals`, with the one-second target) for the slower of the two through a sequence; the
fan-out adds at most FANOUT_LIMIT to it, and the ratio is at most RATIO_LIMIT.

Everything runs as real processes, as in `bench.detect_to_contain`: a moto server, a Temporal dev server,
`worker.py` and the listener (`starter.py`, long-polling as in production).

Also, before the rounds, on the account made ready (`irflow.devstack.readiness.make_ready`, with the worker's
workload; its detector and trail stay for the rounds): rounds of `irflow preflight`'s AWS checks
(`activities.readiness.run_all_aws_checks`), beside one `DescribeInstances` call as the unit, so that a reader knows
what a readiness round costs. Before the rounds, because the account must still be ready: the rounds' workloads add
VPCs that the forensic-egress check would rightly find without egress.

    .venv/bin/python -m bench.attack_sequence [--rounds 20] [--warmup 2] [--readiness-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import boto3

from bench.common import print_goals, process_stack
from bench.detect_to_contain import ENI_POLL, _enis, _summary
from bench.intake import _queue
from irflow.devstack.demo import DemoWorkload, sample_access_key_finding, sample_finding, seed_workload
from irflow.devstack.demo_sequence import workload_attack_sequence
from irflow.devstack.readiness import make_ready
from irflow.intake.router import route
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Status
from irflow.models.readiness import CheckStatus
from irflow.models.settings import get_settings
from irflow.temporal_client import exit_now

# The goals of issue 15's fan-out, beside issue 14's (`print_goals`) for the slower of the two containments.
# Seconds the fan-out may add to the slower of the two containments (medians): one more incident start in line (the
# parent's start, its first task, the fan-out, then each child's signal-with-start), about a single incident's fixed
# cost (bench.detect_to_contain: ~100 ms) twice over, with room for the noisy 2-core machine.
FANOUT_LIMIT = 0.25
RATIO_LIMIT = 1.5  # sequence / two findings (medians)
CONTAINED_LIMIT = 1.0  # the slower of the two, through a sequence (median): the one-second target
DESCRIBES = 20  # DescribeInstances calls timed for the unit


@dataclass
class Contained:
    """Seconds from the send to each resource seen contained from outside, and to both. From the incidents' own
    records: received -> `contained_at` (every containment step done, more than the poller waits for) of the slower
    of the two resources' incidents, and for a sequence the parent received -> the last of its children received."""

    instance: float
    key: float
    recorded: float = 0.0
    fanout: float = 0.0

    @property
    def both(self) -> float:
        return max(self.instance, self.key)


def _key_inactive(iam, workload: DemoWorkload) -> bool:
    keys = iam.list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
    return any(k["AccessKeyId"] == workload.access_key_id and k["Status"] == "Inactive" for k in keys)


def _watch(ec2, iam, workload: DemoWorkload, send: Callable[[], None]) -> Contained:
    """`send()`, then look at the instance's ENIs and the key (each until it is contained) every ENI_POLL: the same
    watcher, so the same load on the server and the same lag, for the sequence and for the two findings."""
    enis, quarantine = _enis(ec2, workload.instance_id), get_settings().quarantine_group_name
    started = time.perf_counter()
    send()
    isolated = inactive = None
    deadline = started + 60
    while isolated is None or inactive is None:
        if isolated is None:
            described = ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]
            if all([g["GroupName"] for g in eni["Groups"]] == [quarantine] for eni in described):
                isolated = time.perf_counter() - started
        if inactive is None and _key_inactive(iam, workload):
            inactive = time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{workload.instance_id} and {workload.access_key_id} were not contained within 60 s")
        time.sleep(ENI_POLL)
    return Contained(isolated, inactive)


def _fresh(event: dict) -> dict:
    event["id"] = str(uuid.uuid4())
    return event


def _incident_key(event: dict) -> str:
    """The workflow id the listener gives the finding (`intake.router.route`)."""
    return route(parse_guardduty(event).finding).incident_key


async def _state(client, workflow_id: str) -> IncidentState:
    return await client.get_workflow_handle(workflow_id).query("current_state", result_type=IncidentState)


async def _awaiting(client, workflow_id: str, ready: Callable[[IncidentState], bool] = lambda s: True) -> IncidentState:
    """The incident's state once it awaits a decision (or has ended) and `ready` holds."""
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        state = await _state(client, workflow_id)
        if (state.status == Status.AWAITING_DECISION or state.status.is_final) and ready(state):
            return state
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{workflow_id} did not reach a decision within 120 s")


async def _close(client, workflow_ids: list[str]) -> None:
    """Let the incidents finish (a reject and its undo, side by side), so the next measurement runs on a quiet
    server."""

    async def close(workflow_id: str) -> None:
        state = await _awaiting(client, workflow_id)
        if not state.status.is_final:
            handle = client.get_workflow_handle(workflow_id)
            await handle.signal("reject", {"by": "alice", "reason": "benchmark cleanup"})
            await handle.result()

    await asyncio.gather(*(close(workflow_id) for workflow_id in workflow_ids))


async def _slower(client, workflow_ids: list[str]) -> tuple[list[IncidentState], float]:
    """The incidents once contained, and the slower one's received -> contained, from their own records."""
    states = [await _awaiting(client, incident, lambda s: s.contained_at is not None) for incident in workflow_ids]
    return states, max((s.contained_at - s.received_at).total_seconds() for s in states)


async def _sequence(client, ec2, iam, sqs, queue: str, workload: DemoWorkload, close: bool) -> Contained:
    """The attack sequence naming the workload's instance and key, put on the queue; its incidents closed if
    `close` (a measurement follows)."""
    event = _fresh(workload_attack_sequence(workload, finding_id=uuid.uuid4().hex))
    body = json.dumps(event)
    contained = _watch(ec2, iam, workload, lambda: sqs.send_message(QueueUrl=queue, MessageBody=body))
    parent = _incident_key(event)
    state = await _awaiting(client, parent, lambda s: len(s.children) == 2)
    if sorted(c.playbook for c in state.children) != ["ec2-instance", "iam-user-credentials"]:
        raise AssertionError(f"the sequence opened {state.children}, not the instance's and the key's incidents")
    children = [c.workflow_id for c in state.children]
    states, contained.recorded = await _slower(client, children)
    contained.fanout = (max(c.received_at for c in states) - state.received_at).total_seconds()
    if close:
        await _close(client, [*children, parent])
    return contained


async def _two_findings(client, ec2, iam, sqs, queue: str, workload: DemoWorkload, close: bool) -> Contained:
    """The baseline: an EC2 finding and an access-key finding about the workload, sent in one batch; closed (if
    `close`)."""
    account, region = workload.account_id, workload.region
    events = [
        _fresh(sample_finding(workload.instance_id, account, region, finding_id=uuid.uuid4().hex)),
        _fresh(
            sample_access_key_finding(
                workload.iam_user, workload.access_key_id, account, region, finding_id=uuid.uuid4().hex
            )
        ),
    ]
    entries = [{"Id": str(n), "MessageBody": json.dumps(event)} for n, event in enumerate(events)]
    contained = _watch(ec2, iam, workload, lambda: sqs.send_message_batch(QueueUrl=queue, Entries=entries))
    incidents = [_incident_key(event) for event in events]
    _, contained.recorded = await _slower(client, incidents)
    if close:
        await _close(client, incidents)
    return contained


async def _rounds(client, sqs, queue: str, count: int, warmup: int) -> tuple[list[Contained], list[Contained]]:
    """A fresh workload for each side of each round; which side goes first alternates. Each measurement's incidents
    are closed before the next (not after the last: the servers stop)."""
    ec2, iam = boto3.client("ec2"), boto3.client("iam")
    sequences, findings = [], []
    for n in range(count + warmup):
        sequence_workload = seed_workload(name=f"s{uuid.uuid4().hex[:8]}")
        findings_workload = seed_workload(name=f"f{uuid.uuid4().hex[:8]}")
        last = n == count + warmup - 1
        if n % 2 == 0:
            through_sequence = await _sequence(client, ec2, iam, sqs, queue, sequence_workload, True)
            as_findings = await _two_findings(client, ec2, iam, sqs, queue, findings_workload, not last)
        else:
            as_findings = await _two_findings(client, ec2, iam, sqs, queue, findings_workload, True)
            through_sequence = await _sequence(client, ec2, iam, sqs, queue, sequence_workload, not last)
        if n < warmup:  # first incidents: worker caches, first clients; not measured
            continue
        sequences.append(through_sequence)
        findings.append(as_findings)
        if (n - warmup + 1) % 5 == 0:
            latest = _summary("sequence, both contained", [c.both for c in sequences])
            print(f"  {n - warmup + 1}/{count}: {latest}", flush=True)
    return sequences, findings


def _readiness(workload: DemoWorkload, rounds: int) -> tuple[list[float], list[float], int, int]:
    """On the account made ready: (seconds of each readiness round, of each DescribeInstances call, checks in a
    round, checks that passed). The workload's and the readiness settings only for this, as `irflow preflight`
    would run with them."""
    from activities.readiness import run_all_aws_checks

    ready = make_ready(workload)
    with mock.patch.dict(os.environ, {**workload.worker_environment(), **ready.settings}):
        get_settings.cache_clear()
        settings = get_settings()
        results = run_all_aws_checks(settings)  # warm-up: imports, first clients; not measured
        took = []
        for _ in range(rounds):
            started = time.perf_counter()
            results = run_all_aws_checks(settings)
            took.append(time.perf_counter() - started)
    get_settings.cache_clear()
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.describe_instances(InstanceIds=[workload.instance_id])
    unit = []
    for _ in range(DESCRIBES):
        started = time.perf_counter()
        ec2.describe_instances(InstanceIds=[workload.instance_id])
        unit.append(time.perf_counter() - started)
    return took, unit, len(results), sum(r.status == CheckStatus.PASS for r in results)


def _report(sequences: list[Contained], findings: list[Contained]) -> None:
    through, apart = [c.both for c in sequences], [c.both for c in findings]
    print(
        f"{len(sequences)} rounds: an attack sequence naming an instance (2 ENIs, Auto Scaling and target group) and "
        "an access key, beside the same two resources as two findings sent together"
    )
    print(_summary("two findings, queue -> instance isolated           ", [c.instance for c in findings]))
    print(_summary("two findings, queue -> key Inactive                ", [c.key for c in findings]))
    print(_summary("two findings, queue -> both contained (baseline)   ", apart))
    print("  " + _summary("records: received -> all steps (slower incident) ", [c.recorded for c in findings]))
    print(_summary("attack sequence, queue -> instance isolated        ", [c.instance for c in sequences]))
    print(_summary("attack sequence, queue -> key Inactive             ", [c.key for c in sequences]))
    print(_summary("attack sequence, queue -> every resource contained ", through))
    print("  " + _summary("records: parent received -> children received    ", [c.fanout for c in sequences]))
    print("  " + _summary("records: received -> all steps (slower child)    ", [c.recorded for c in sequences]))
    median, base = statistics.median(through), statistics.median(apart)
    added, ratio = median - base, median / base
    print(f"fan-out adds (medians): {added * 1000:.0f} ms")
    print(f"ratio sequence / two findings (medians): {ratio:.2f}")
    print_goals(through, apart, limit_seconds=CONTAINED_LIMIT)
    for goal, met in (
        (f"fan-out adds <= {FANOUT_LIMIT * 1000:.0f} ms to the slower of the two containments", added <= FANOUT_LIMIT),
        (f"ratio ({ratio:.2f}) <= {RATIO_LIMIT}x", ratio <= RATIO_LIMIT),
    ):
        print(f"goal: {goal} -> {'met' if met else 'NOT met'}")


def _readiness_report(took: list[float], unit: list[float], checks: int, passed: int) -> None:
    median, describe = statistics.median(took), statistics.median(unit)
    print(f"irflow preflight's AWS checks on the ready account ({checks} checks, {passed} pass), {len(took)} rounds")
    print(_summary("one DescribeInstances call (the unit)              ", unit))
    print(_summary("one readiness round (run_all_aws_checks)           ", took))
    print(f"a readiness round costs {median / describe:.0f} DescribeInstances calls (medians)")


async def main(count: int, warmup: int, readiness_rounds: int) -> None:
    async with process_stack() as stack:
        sqs = boto3.client("sqs")
        workload = seed_workload(name=f"seq{uuid.uuid4().hex[:8]}")
        readiness = _readiness(workload, readiness_rounds)  # before the rounds: on the account as made ready
        queue = _queue(sqs, "sequence-bench")
        stack.start_irflow(workload.worker_environment(), queue)
        figures = await _rounds(stack.client, sqs, queue, count, warmup)
    _report(*figures)
    _readiness_report(*readiness)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--readiness-rounds", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.warmup, arguments.readiness_rounds))
    exit_now(0)  # the SDK's runtime threads can crash interpreter teardown (see exit_now)
