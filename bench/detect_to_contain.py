"""Latency: a finding enters the queue → what it names is contained.

Two kinds of incident, measured from outside:
- **EC2**: a GuardDuty finding about an instance (two ENIs, an Auto Scaling group, a target group) is put on
  the queue, and the bench polls until every ENI carries only the quarantine group. Baseline, in the same run
  on the same moto server: the same isolation (`isolate_network`'s own calls: the instance, the isolation
  groups, each ENI through the untrack group into quarantine) made directly, one call after another, watched
  by the same poller (which loads the server and lags alike); the calls' own duration is printed too.
  Goals (issue 14): median <= 2x the baseline and <= 250 ms; p99 <= 2x the median.
- **IAM user**: a CloudTrail event shows a user's key misused (below).

Everything runs as real processes: a moto server (the AWS account and its SQS queue), a Temporal dev
server, `worker.py` and the listener (`starter.py`, long-polling as in production). For each of N IAM users,
one EventBridge "AWS API Call via CloudTrail" event (the user's key calling `StopLogging`, HIGH, contained
without waiting for a human) is put on the queue, and the bench polls the account from outside until
(a) the key is Inactive and (b) the session revocation policy, irflow's last containment step, is on the user.
One event at a time, so each figure is a latency, not a queueing delay.

Baseline, in the same run and on the same moto server: a bare responder (a thread long-polling its own
queue that sets the key Inactive and puts a deny policy on the user the moment a message arrives, with no
parsing, rules, Temporal or workflow). The ratio is what detection and durability cost on top of the
queue and the AWS calls themselves.

    .venv/bin/python -m bench.detect_to_contain [--events 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import boto3

from bench.common import percentile, print_goals, process_stack
from bench.intake import _queue
from irflow.devstack.demo import sample_cloudtrail_event, sample_finding, seed_workload
from irflow.devstack.processes import free_port
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.incident import IncidentState
from irflow.models.settings import get_settings
from irflow.temporal_client import exit_now
from irflow.visibility import identity_hash

POLL = 0.01  # seconds between looks at the account
# Between looks at the instance's ENIs: each look costs the (single-process) moto server a few ms of work that
# would slow down what is measured; at this pace the watcher takes about a fifth of it, for irflow and the
# baseline alike, and sees the isolation at most this late.
ENI_POLL = 0.02
DENY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})


def _users(iam, prefix: str, count: int) -> list[tuple[str, str]]:
    users = []
    for n in range(count):
        name = f"{prefix}-{n:03d}"
        iam.create_user(UserName=name)
        users.append((name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]))
    return users


def _event(workload, user: str, key: str) -> str:
    event = sample_cloudtrail_event(workload, "StopLogging")
    identity = event["detail"]["userIdentity"]
    identity.update(userName=user, accessKeyId=key, arn=f"arn:aws:iam::{workload.account_id}:user/{user}")
    event["detail"]["eventID"] = str(uuid.uuid4())
    event["id"] = str(uuid.uuid4())
    return json.dumps(event)


def _measure(iam, sqs, queue: str, body: str, user: str, key: str, policy_prefix: str) -> tuple[float, float, float]:
    """Seconds from send to (key Inactive, revocation policy present), seen from outside; the send's wall time."""
    sent = time.time()
    started = time.perf_counter()
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    inactive = revoked = None
    deadline = started + 60
    while inactive is None or revoked is None:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{user} was not contained within 60 s")
        if inactive is None:
            keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            if any(k["AccessKeyId"] == key and k["Status"] == "Inactive" for k in keys):
                inactive = time.perf_counter() - started
        if inactive is not None:
            names = iam.list_user_policies(UserName=user)["PolicyNames"]
            if any(n.startswith(policy_prefix) for n in names):
                revoked = time.perf_counter() - started
        time.sleep(POLL)
    return inactive, revoked, sent


class BareResponder(threading.Thread):
    """The baseline: receive, set the key Inactive, deny the user, delete the message. Nothing else."""

    def __init__(self, queue: str) -> None:
        super().__init__(daemon=True)
        self.queue, self.stopping = queue, threading.Event()
        self.sqs, self.iam = boto3.client("sqs"), boto3.client("iam")

    def run(self) -> None:
        while not self.stopping.is_set():
            for message in self.sqs.receive_message(QueueUrl=self.queue, WaitTimeSeconds=1).get("Messages", []):
                identity = json.loads(message["Body"])["detail"]["userIdentity"]
                user, key = identity["userName"], identity["accessKeyId"]
                self.iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
                self.iam.put_user_policy(UserName=user, PolicyName="bare-deny", PolicyDocument=DENY)
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])


def _enis(ec2, instance_id: str) -> list[str]:
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return [eni["NetworkInterfaceId"] for eni in instance["NetworkInterfaces"]]


def _watch_isolation(ec2, workload, start: Callable[[], None]) -> float:
    """Seconds from `start()` to every ENI of the workload's instance in quarantine, seen from outside: the same
    watcher, and so the same load on the server and the same lag, for irflow and for the baseline."""
    enis, quarantine = _enis(ec2, workload.instance_id), get_settings().quarantine_group_name
    started = time.perf_counter()
    start()
    deadline = started + 60
    while True:
        described = ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]
        if all([g["GroupName"] for g in eni["Groups"]] == [quarantine] for eni in described):
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{workload.instance_id} was not isolated within 60 s")
        time.sleep(ENI_POLL)


def _measure_isolation(ec2, sqs, queue: str, workload) -> float:
    """irflow: the GuardDuty finding put on the queue -> every ENI in quarantine."""
    body = json.dumps(sample_finding(workload.instance_id, workload.account_id, workload.region, severity=8.0))
    return _watch_isolation(ec2, workload, lambda: sqs.send_message(QueueUrl=queue, MessageBody=body))


def _direct_isolation(ec2, workload) -> tuple[float, float]:
    """The baseline: isolate_network's own calls, straight, one after another (the prior state read beforehand,
    not timed). Seen from outside like irflow, and the calls' own duration."""
    from activities.ec2_containment import isolate_network
    from activities.ec2_context import describe_instance_context

    target = Ec2Target(
        incident_id=f"bench-{uuid.uuid4().hex[:8]}",
        account_id=workload.account_id,
        region=workload.region,
        instance_id=workload.instance_id,
    )
    step = Ec2StepInput(target=target, prior=describe_instance_context(target))
    took: list[float] = []

    def isolate() -> None:
        began = time.perf_counter()
        isolate_network(step)
        took.append(time.perf_counter() - began)

    calls = threading.Thread(target=isolate)
    seen = _watch_isolation(ec2, workload, calls.start)
    calls.join()
    return seen, took[0]


async def _close(client, instance_id: str) -> None:
    """Let the incident finish (evidence, then a reject and its undo), so the next round runs on a quiet server."""
    query = f"WorkflowType = 'IncidentWorkflow' AND IrflowResourceId = '{instance_id}'"
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        async for execution in client.list_workflows(query):
            handle = client.get_workflow_handle(execution.id)
            state = await handle.query("current_state", result_type=IncidentState)
            if state.pending_decision is not None and state.pending_decision.kind == "eradication":
                await handle.signal("reject", {"by": "alice", "reason": "benchmark cleanup"})
                await handle.result()
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the incident of {instance_id} did not reach its decision within 120 s")


async def _ec2_rounds(client, sqs, queue: str, count: int, warmup: int, environment: dict[str, str]):
    """Alternating, on fresh workloads in one account: irflow through the queue, then the direct baseline;
    each incident is closed before the next round (its evidence work would otherwise load the server)."""
    import os

    os.environ.update(environment)  # the baseline isolates with the worker's own settings (forensic egress)
    get_settings.cache_clear()
    ec2 = boto3.client("ec2")
    measured, baseline, calls_alone = [], [], []
    for n in range(count + warmup):
        irflow_workload, direct_workload = (
            seed_workload(name=f"e{uuid.uuid4().hex[:8]}"),
            seed_workload(name=f"d{uuid.uuid4().hex[:8]}"),
        )
        isolated = _measure_isolation(ec2, sqs, queue, irflow_workload)
        await _close(client, irflow_workload.instance_id)
        direct, own = _direct_isolation(ec2, direct_workload)
        if n < warmup:
            continue
        measured.append(isolated)
        baseline.append(direct)
        calls_alone.append(own)
        if (n - warmup + 1) % 10 == 0:
            print(f"  EC2 {n - warmup + 1}/{count}: {_summary('irflow', measured)}", flush=True)
    return measured, baseline, calls_alone


def _ec2_report(measured: list[float], baseline: list[float], calls_alone: list[float]) -> None:
    median, base = statistics.median(measured), statistics.median(baseline)
    print(f"{len(measured)} GuardDuty findings about instances (2 ENIs, Auto Scaling and target group), one at a time")
    print(_summary("direct isolation calls, their own duration             ", calls_alone))
    print(_summary("direct isolation calls, seen from outside (baseline)   ", baseline))
    print(_summary("irflow, queue -> every ENI isolated                    ", measured))
    print(f"ratio irflow / direct isolation (medians): {median / base:.1f}")
    print_goals(measured, baseline, limit_seconds=0.25)


def _summary(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values) * 1000:6.0f} ms, p99 {percentile(values, 0.99) * 1000:6.0f} ms,"
        f" max {max(values) * 1000:6.0f} ms"
    )


async def _breakdown(client, sent: dict[str, float]) -> tuple[list[float], list[float]]:
    """From each incident's own record: send → listener received it, received → workflow saw containment done."""
    to_listener, to_contained = [], []
    for user, at in sent.items():
        query = f"WorkflowType = 'IncidentWorkflow' AND IrflowResourceId = '{identity_hash(user)}'"  # hashed
        async for execution in client.list_workflows(query):
            state = await client.get_workflow_handle(execution.id).query("current_state", result_type=IncidentState)
            if state.contained_at is not None:
                to_listener.append(state.received_at.timestamp() - at)
                to_contained.append((state.contained_at - state.received_at).total_seconds())
    return to_listener, to_contained


async def main(count: int, warmup: int, instances: int) -> None:
    async with process_stack() as stack:
        client = stack.client
        sqs, iam = boto3.client("sqs"), boto3.client("iam")
        workload = seed_workload(name=f"lat{free_port()}")
        queue, bare_queue = _queue(sqs, "detect-bench"), _queue(sqs, "bare-bench")
        irflow_users = _users(iam, "irflow", count + warmup)
        bare_users = _users(iam, "bare", count + warmup)
        stack.start_irflow(workload.worker_environment(), queue)
        if instances:
            environment = workload.worker_environment()
            ec2_figures = await _ec2_rounds(client, sqs, queue, instances, warmup, environment)
        bare = BareResponder(bare_queue)
        bare.start()

        irflow_key, irflow_all, bare_all, sent = [], [], [], {}
        for n, ((user, key), (bare_user, bare_key)) in enumerate(zip(irflow_users, bare_users, strict=True)):
            body = _event(workload, user, key)
            key_seen, revoked, sent_at = _measure(iam, sqs, queue, body, user, key, "irflow-revoke-sessions-")
            _, bare_done, _ = _measure(
                iam, sqs, bare_queue, _event(workload, bare_user, bare_key), bare_user, bare_key, "bare-deny"
            )
            if n < warmup:  # first workflows: worker caches, first clients; not measured
                continue
            sent[user] = sent_at
            irflow_key.append(key_seen)
            irflow_all.append(revoked)
            bare_all.append(bare_done)
            if (n - warmup + 1) % 20 == 0:
                print(f"  {n - warmup + 1}/{count}: {_summary('irflow', irflow_all)}", flush=True)
        bare.stopping.set()
        bare.join(timeout=10)
        to_listener, to_contained = await _breakdown(client, sent)
    if instances:
        _ec2_report(*ec2_figures)
    if not count:
        return
    print(f"{count} CloudTrail events, one at a time (moto server, Temporal dev server, worker and listener processes)")
    print(_summary("bare responder, queue -> key Inactive + deny policy   ", bare_all))
    print(_summary("irflow, queue -> key Inactive                          ", irflow_key))
    print(_summary("irflow, queue -> containment applied (all three steps)", irflow_all))
    print("  where irflow's time goes (each incident's own timestamps):")
    print("  " + _summary("queue -> listener received the message   ", to_listener))
    print("  " + _summary("received -> workflow recorded containment", to_contained))
    ratio = statistics.median(irflow_all) / statistics.median(bare_all)
    print(f"ratio irflow / bare (medians): {ratio:.1f}")
    met = statistics.median(irflow_all) < 1.0
    print(f"target: median under 1000 ms -> {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--instances", type=int, default=30, help="EC2 incidents (queue -> every ENI isolated)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.warmup, arguments.instances))
    exit_now(0)  # the SDK's runtime threads can crash interpreter teardown (see exit_now)
