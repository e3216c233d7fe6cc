"""Load: a burst of findings, a share of them duplicates, over many resources, through SQS to two workers and two
listeners (real processes on a moto server and a Temporal dev server).

The burst: `--findings` messages (default 1,000) about `--resources` resources (default 200: instances and IAM
users, one in four a user). A share (`--duplicates`, default 30%) repeats a finding already in the burst: half the
same message body sent again (a redelivery: counted as a delivery, absorbed nowhere a second time), half the same
finding updated (a later `updatedAt`, a higher count: a new version, absorbed once). Everything is put on the
queue at once, shuffled, ten to a `SendMessageBatch`.

Checked: one incident per resource; each incident counts every message about it as a delivery and absorbs each
distinct version of a finding once; the dead-letter queue is empty and the findings queue drained. Measured:
burst start -> queue drained (findings/s), burst start -> the last incident contained (incidents/s), and each
incident's time to contain (its own `contained_at`), median and p90.

Baseline, in the same run on the same servers: a bare Temporal workflow (`bench.load_baseline`, on as many worker
processes of its own) that makes, for the same mix of fresh resources, the EC2 and IAM calls an incident makes up
to containment (listed from a probe incident of each kind, recorded by the moto server), all started at once.

    .venv/bin/python -m bench.load [--findings 1000 --resources 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import os
import random
import shutil
import statistics
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import boto3

from bench.common import percentile, process_stack, start_irflow_processes
from bench.intake import _queue
from irflow.devstack.demo import IMAGE_ID, sample_access_key_finding, sample_finding, seed_workload
from irflow.models.incident import IncidentState
from irflow.temporal_client import exit_now
from irflow.visibility import identity_hash
from workflows.search_attributes import RESOURCE_ID

WORKERS = LISTENERS = 2


@dataclass
class Resource:
    kind: str  # "instance" or "user"
    name: str  # instance id or user name
    key: str = ""  # the user's access key

    @property
    def resource_id(self) -> str:
        """As the incident's search attribute names it (an identity only as its hash)."""
        return self.name if self.kind == "instance" else identity_hash(self.name)


@dataclass
class Burst:
    bodies: list[str]
    deliveries: Counter = field(default_factory=Counter)  # resource id -> messages about it
    versions: dict[str, set[str]] = field(default_factory=dict)  # resource id -> distinct finding versions


def create_resources(workload, count: int, prefix: str) -> list[Resource]:
    """`count` resources in the workload's account, one in four an IAM user with an access key, the rest
    instances in the workload's subnet and web group."""
    ec2, iam = boto3.client("ec2", region_name=workload.region), boto3.client("iam", region_name=workload.region)
    users = count // 4
    instances: list[str] = []
    while len(instances) < count - users:
        batch = min(50, count - users - len(instances))
        reservation = ec2.run_instances(
            ImageId=IMAGE_ID,
            InstanceType="t3.micro",
            MinCount=batch,
            MaxCount=batch,
            SubnetId=workload.subnet_ids[len(instances) // 50 % 2],  # a /24 each: spread over both
            SecurityGroupIds=[workload.web_group_id],
        )
        instances += [i["InstanceId"] for i in reservation["Instances"]]
    resources = [Resource("instance", i) for i in instances]
    for n in range(users):
        name = f"{prefix}-user-{n:03d}"
        iam.create_user(UserName=name)
        resources.append(Resource("user", name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]))
    return resources


def _finding(workload, resource: Resource, finding_id: str, now: datetime) -> dict:
    if resource.kind == "instance":
        return sample_finding(resource.name, workload.account_id, workload.region, finding_id=finding_id, now=now)
    event = sample_access_key_finding(
        resource.name, resource.key, workload.account_id, workload.region, finding_id=finding_id
    )
    return event


def make_burst(workload, resources: list[Resource], findings: int, duplicate_share: float, seed: int = 16) -> Burst:
    """Distinct findings (each resource at least one), then duplicates of them: half redelivered as they were,
    half updated; shuffled. Records what each incident should count."""
    rng = random.Random(seed)
    duplicates = round(findings * duplicate_share)
    distinct = findings - duplicates
    assert distinct >= len(resources), "every resource needs a finding of its own"
    now = datetime.now(UTC).replace(microsecond=0)
    originals: list[tuple[Resource, dict]] = []
    for n in range(distinct):
        resource = resources[n] if n < len(resources) else rng.choice(resources)
        originals.append((resource, _finding(workload, resource, uuid.uuid4().hex, now)))
    burst = Burst(bodies=[])

    def add(resource: Resource, event: dict) -> None:
        detail = event["detail"]
        burst.bodies.append(json.dumps(event))
        burst.deliveries[resource.resource_id] += 1
        version = f"{detail['id']}|{detail['updatedAt']}|{detail['service']['count']}"
        burst.versions.setdefault(resource.resource_id, set()).add(version)

    for resource, event in originals:
        add(resource, event)
    for n in range(duplicates):
        resource, event = rng.choice(originals)
        if n % 2 == 0:
            add(resource, event)  # the very same finding, delivered again
            continue
        updated = copy.deepcopy(event)  # the same finding, seen again later: GuardDuty bumps its count
        updated["detail"]["updatedAt"] = (now + timedelta(seconds=n + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        updated["detail"]["service"]["count"] = event["detail"]["service"]["count"] + n + 1
        add(resource, updated)
    rng.shuffle(burst.bodies)
    return burst


def send_burst(sqs, queue: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])]
        failed = sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")
        assert not failed, failed


def queue_depth(sqs, queue: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def dead_letter_queue(sqs, queue: str) -> str:
    arn = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    )["deadLetterTargetArn"]
    return sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]


async def incidents(client, resource_ids: set[str]) -> dict[str, list[IncidentState]]:
    """Every incident about these resources (by the resource id it is searched by), each as its `current_state`
    query answers."""
    found: list[tuple[str, str]] = []
    async for execution in client.list_workflows("WorkflowType = 'IncidentWorkflow'"):
        resource = execution.typed_search_attributes.get(RESOURCE_ID)
        if resource in resource_ids:
            found.append((resource, execution.id))
    states = await asyncio.gather(
        *(
            client.get_workflow_handle(workflow_id).query("current_state", result_type=IncidentState)
            for _, workflow_id in found
        ),
        return_exceptions=True,  # a workflow task failing is a finding of the bench's, told, not a crash
    )
    by_resource: dict[str, list[IncidentState]] = {}
    for (resource, workflow_id), state in zip(found, states, strict=True):
        if isinstance(state, BaseException):
            UNANSWERED[workflow_id] = str(state)
            continue
        UNANSWERED.pop(workflow_id, None)
        by_resource.setdefault(resource, []).append(state)
    return by_resource


UNANSWERED: dict[str, str] = {}  # workflow id -> why its query failed, the latest


@dataclass
class Outcome:
    """What the burst left: incidents by resource, the queues, and when the queue was seen drained."""

    by_resource: dict[str, list[IncidentState]]
    drained_after: float  # seconds from the burst's start
    dead_lettered: int
    left_in_queue: int

    def problems(self, burst: Burst) -> list[str]:
        """Every way the outcome differs from what the burst should leave: empty when correct."""
        found = []
        for resource, delivered in sorted(burst.deliveries.items()):
            states = self.by_resource.get(resource, [])
            if len(states) != 1:
                found.append(f"{resource}: {len(states)} incidents, not 1")
                continue
            state, versions = states[0], len(burst.versions[resource])
            if state.finding_deliveries != delivered or state.absorbed_count() != versions:
                found.append(
                    f"{resource}: {state.finding_deliveries} deliveries and {state.absorbed_count()} findings absorbed,"
                    f" not {delivered} and {versions}"
                )
        extra = set(self.by_resource) - set(burst.deliveries)
        found += [f"{resource}: an incident about a resource the burst never named" for resource in sorted(extra)]
        if self.dead_lettered:
            found.append(f"{self.dead_lettered} messages dead-lettered")
        if self.left_in_queue:
            found.append(f"{self.left_in_queue} messages left in the findings queue")
        return found


async def run_burst(
    client, sqs, queue: str, burst: Burst, timeout: float, contained: bool = True, poll: float = 1.0
) -> tuple[float, Outcome]:
    """Send the burst; wait (polling, with a deadline) until the queue is drained and every incident has counted
    every delivery about it (and, if `contained`, recorded its containment). Returns the burst's start (epoch
    seconds) and what it left."""
    started = time.time()
    send_burst(sqs, queue, burst.bodies)
    deadline = started + timeout
    drained_after = None
    expected = sum(burst.deliveries.values())
    while True:
        if drained_after is None and queue_depth(sqs, queue) == 0:
            drained_after = time.time() - started
        if drained_after is not None:
            by_resource = await incidents(client, set(burst.deliveries))
            states = [s for group in by_resource.values() for s in group]
            counted = sum(s.finding_deliveries for s in states)
            if counted >= expected and (not contained or all(s.contained_at for s in states)):
                break
        if time.time() > deadline:
            by_resource = await incidents(client, set(burst.deliveries))
            break
        await asyncio.sleep(min(poll, 0.25) if drained_after is None else poll)
    dlq = dead_letter_queue(sqs, queue)
    outcome = Outcome(by_resource, drained_after or float("nan"), queue_depth(sqs, dlq), queue_depth(sqs, queue))
    return started, outcome


# --- the calls an incident makes up to containment, recorded by the moto server -----------------------------

RECORDER_FILE = "MOTO_RECORDER_FILEPATH"


def _recorder(endpoint: str, verb: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/recorder/{verb}-recording", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (our own local server)
        answer.read()


def recorded_actions(
    path: Path, services: tuple[str, ...] = ("ec2", "iam", "autoscaling", "elasticloadbalancing")
) -> Counter:
    """Each EC2 and IAM action in moto's recording (query protocol: `Action=` in the body), counted."""
    from urllib.parse import parse_qs

    actions: Counter = Counter()
    if not path.exists():
        return actions
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        auth = entry["headers"].get("Authorization", "")
        service = auth.split("/")[3] if auth.count("/") >= 4 else ""
        if service in services:
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            action = parse_qs(body).get("Action", ["?"])[0]
            actions[f"{service}:{action}"] += 1
    return actions


async def probe_calls(client, sqs, queue: str, workload, recording: Path) -> dict[str, Counter]:
    """One incident of each kind alone, recorded from its finding to its containment: the calls it makes. The
    first instance's incident goes unrecorded: it creates the VPC's isolation groups, once for every incident."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    calls: dict[str, Counter] = {}
    probes = create_resources(workload, 4, f"probe{uuid.uuid4().hex[:6]}")
    for n, resource in enumerate((probes[0], probes[1], probes[-1])):  # two instances, a user
        burst = make_burst(workload, [resource], 1, 0.0)
        recording.unlink(missing_ok=True)  # noqa: ASYNC240 (a local file, before the servers' work begins)
        _recorder(endpoint, "start")
        try:
            await run_burst(client, sqs, queue, burst, timeout=120, poll=0.02)
        finally:
            _recorder(endpoint, "stop")
        if n:
            calls[resource.kind] = recorded_actions(recording)
    return calls


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:6.0f} ms, p90 {percentile(values, 0.9) * 1000:6.0f} ms"


async def main(findings: int, resources: int, duplicate_share: float, logs: Path | None) -> int:
    from bench.load_baseline import run_baseline, start_baseline_workers

    with TemporaryDirectory() as scratch:
        recording = Path(scratch) / "moto-recording.jsonl"
        os.environ[RECORDER_FILE] = str(recording)  # the moto server started below inherits it
        async with process_stack() as stack:
            client, sqs = stack.client, boto3.client("sqs")
            workload = seed_workload(name=f"load{uuid.uuid4().hex[:6]}")
            queue = _queue(sqs, f"load-{uuid.uuid4().hex[:6]}")
            start_irflow_processes(stack, workload.worker_environment(), queue, WORKERS, LISTENERS)
            calls = await probe_calls(client, sqs, queue, workload, recording)
            for kind, counted in calls.items():
                print(
                    f"{'an' if kind == 'instance' else 'a'} {kind} incident's calls up to containment: "
                    + ", ".join(f"{a} x{n}" for a, n in sorted(counted.items()))
                )

            start_baseline_workers(stack, WORKERS)
            bare_resources = create_resources(workload, resources, f"bare{uuid.uuid4().hex[:6]}")
            base = await run_baseline(client, workload, bare_resources, calls)

            mine = create_resources(workload, resources, f"load{uuid.uuid4().hex[:6]}")
            burst = make_burst(workload, mine, findings, duplicate_share)
            try:
                started, outcome = await run_burst(client, sqs, queue, burst, timeout=600)
            finally:
                if logs:  # the processes' logs outlive the stack's temporary folder
                    shutil.copytree(stack.group.log_dir, logs, dirs_exist_ok=True)
    problems = outcome.problems(burst) + [f"{len(UNANSWERED)} incidents did not answer their query"] * bool(UNANSWERED)
    states = [s for group in outcome.by_resource.values() for s in group]
    contained = [s.contained_at.timestamp() - started for s in states if s.contained_at]
    to_contain = [(s.contained_at - s.received_at).total_seconds() for s in states if s.contained_at]
    duplicates = round(findings * duplicate_share)
    repeats = sum(burst.deliveries.values()) - sum(len(v) for v in burst.versions.values())
    print(
        f"{findings} findings ({findings - duplicates} distinct, {duplicates} duplicates:"
        f" {repeats} redelivered, the rest updated) over {resources} resources"
        f" ({sum(r.kind == 'user' for r in mine)} IAM users); {WORKERS} workers, {LISTENERS} listeners"
    )
    print(
        f"incidents: {len(states)}; deliveries counted {sum(s.finding_deliveries for s in states)}"
        f" (sent {sum(burst.deliveries.values())}); findings absorbed {sum(s.absorbed_count() for s in states)}"
        f" (distinct versions {sum(len(v) for v in burst.versions.values())}); dead-lettered {outcome.dead_lettered};"
        f" left in queue {outcome.left_in_queue}"
    )
    print(f"correctness: {'every check passed' if not problems else f'{len(problems)} PROBLEMS'}")
    for workflow_id, why in sorted(UNANSWERED.items())[:20]:
        print(f"  {workflow_id}: its query failed: {why}")
    for problem in problems[:20]:
        print(f"  {problem}")
    last = max(contained) if contained else float("nan")
    print(f"burst -> queue drained: {outcome.drained_after:.1f} s ({findings / outcome.drained_after:.1f} findings/s)")
    print(
        f"burst -> incidents contained: {len(contained)} of {len(states)}, the last at {last:.1f} s"
        f" ({len(contained) / last:.2f} incidents/s)"
        + ("" if len(contained) == len(states) else " -- NOT all contained before the deadline")
    )
    print(f"burst -> each incident contained: {_ms(contained)}")
    print(f"each incident, received -> contained: {_ms(to_contain)}")
    print(
        f"baseline (bare workflow, same calls, {WORKERS} workers): {base.took:.1f} s"
        f" ({resources / base.took:.2f} resources/s), each {_ms(base.each)}"
    )
    if base.left_out:
        print(f"  the baseline leaves out {', '.join(base.left_out)} (no call of its own for them)")
    ratio = (len(contained) / last) / (resources / base.took)
    print(f"ratio irflow / bare workflow (incidents/s): {ratio:.2f}")
    print(f"target: ratio >= 0.8 -> {'met' if ratio >= 0.8 else 'NOT met'}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if not problems else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--findings", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--logs", type=Path, help="copy the processes' logs into this folder")
    parser.add_argument("--duplicates", type=float, default=0.3, help="share of the findings that repeat one")
    arguments = parser.parse_args()
    code = asyncio.run(main(arguments.findings, arguments.resources, arguments.duplicates, arguments.logs))
    sys.stdout.flush()
    exit_now(code)
