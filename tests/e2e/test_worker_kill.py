"""The worker killed (SIGKILL) mid-containment, at exact points of an EC2 incident, then started again: every
incident is contained once and only once (one quarantine group, one snapshot per volume, one deny policy on the
instance's role, one report), and an analyst's reject still gives the instance back exactly as it was.

The worker's AWS endpoint is a proxy (tests/e2e/aws_proxy.py) that kills it right after a chosen AWS call took
effect, before the worker could record it. Containment runs as local activities inside a workflow task: the
server hands that task to the next worker when its timeout (Temporal's default, 10 s) passes, and the replay
takes every step again (each is idempotent) on the prior state recorded before the first change."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import boto3
import pytest

from activities.iam import revocation_policy_name
from irflow.devstack.demo import sample_finding, seed_workload
from irflow.devstack.processes import free_port
from irflow.models.incident import IncidentState, Status
from irflow.temporal_client import connect, ensure_search_attributes
from tests.e2e.aws_proxy import AwsProxy

pytestmark = pytest.mark.e2e


async def _until(check, what: str, timeout: float = 60, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


async def _state(client, workflow_id: str) -> IncidentState | None:
    try:
        return await client.get_workflow_handle(workflow_id).query("current_state", result_type=IncidentState)
    except Exception:  # noqa: BLE001 (no worker has picked it up yet)
        return None


async def reaches(client, workflow_id: str, done, what: str, timeout: float = 60) -> IncidentState:
    async def check():
        state = await _state(client, workflow_id)
        return state if state is not None and done(state) else None

    return await _until(check, what, timeout)


def _start_incident(stack, env: dict[str, str], tmp_path, account) -> str:
    finding = tmp_path / "finding.json"
    finding.write_text(json.dumps(sample_finding(account.instance_id, account.account_id, account.region)))
    started = stack.run("starter.py", str(finding), env=env)
    assert started.returncode == 0, started.stderr
    return started.stdout.split("(workflow ", 1)[1].split(")", 1)[0]


class Account:
    """What a responder checks in the account (straight at moto, not through the proxy)."""

    def __init__(self, workload) -> None:
        self.workload = workload
        self.ec2 = boto3.client("ec2", region_name=workload.region)
        self.iam = boto3.client("iam", region_name=workload.region)
        self.s3 = boto3.client("s3", region_name=workload.region)

    def instance(self) -> dict:
        reservations = self.ec2.describe_instances(InstanceIds=[self.workload.instance_id])["Reservations"]
        return reservations[0]["Instances"][0]

    def eni_groups(self) -> dict[str, list[str]]:
        return {
            eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni["Groups"])
            for eni in self.instance()["NetworkInterfaces"]
        }

    def isolation_groups(self, role: str) -> list[str]:
        found = self.ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [self.workload.vpc_id]},
                {"Name": "tag:irflow:role", "Values": [role]},
            ]
        )["SecurityGroups"]
        return [g["GroupId"] for g in found]

    def volumes(self) -> list[str]:
        return [m["Ebs"]["VolumeId"] for m in self.instance()["BlockDeviceMappings"] if "Ebs" in m]

    def snapshots(self, incident_id: str) -> list[str]:
        found = self.ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "tag:irflow:incident-id", "Values": [incident_id]}]
        )["Snapshots"]
        return sorted(s["VolumeId"] for s in found)

    def profile(self) -> str | None:
        associations = self.ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [self.workload.instance_id]}]
        )["IamInstanceProfileAssociations"]
        live = [a["IamInstanceProfile"]["Arn"] for a in associations if a["State"] in ("associated", "associating")]
        return live[0].rsplit("/", 1)[-1] if live else None

    def deny_policies(self, incident_id: str) -> dict[str, int]:
        """Each role's count of the incident's revocation policies (the instance's role, the quarantine one's)."""
        name = revocation_policy_name(incident_id)
        roles = {self.workload.role_name}
        quarantine = self.iam.get_instance_profile(InstanceProfileName=self.workload.quarantine_profile)
        roles |= {r["RoleName"] for r in quarantine["InstanceProfile"]["Roles"]}
        return {role: self.iam.list_role_policies(RoleName=role)["PolicyNames"].count(name) for role in roles}

    def report_versions(self, incident_id: str) -> list[str]:
        versions = self.s3.list_object_versions(Bucket=self.workload.evidence_bucket).get("Versions", [])
        return sorted(v["Key"] for v in versions if incident_id in v["Key"] and "/report/" in v["Key"])


def assert_contained_once(account: Account, state: IncidentState) -> None:
    quarantine, untrack = account.isolation_groups("quarantine"), account.isolation_groups("untrack")
    assert len(quarantine) == 1 and len(untrack) == 1, (quarantine, untrack)
    assert all(groups == quarantine for groups in account.eni_groups().values()), account.eni_groups()
    assert account.snapshots(state.incident_id) == sorted(account.volumes()), "one snapshot per volume"
    assert account.profile() == account.workload.quarantine_profile
    denied = account.deny_policies(state.incident_id)
    assert denied == {r: int(r == account.workload.role_name) for r in denied}, "one deny policy, on the instance's"


@dataclass(frozen=True)
class Kill:
    """Kill the worker right after the `nth` `action` took effect; `undoing`: while the analyst's reject is being
    undone (else mid-containment). Then `decision` (approve, reject)."""

    action: str
    nth: int = 1
    decision: str = "approve"
    undoing: bool = False

    @property
    def name(self) -> str:
        return f"{self.action}#{self.nth}{' (undoing)' if self.undoing else ''}"


# Mid-containment: the first interface into the untrack group (live sessions untracked, not yet dropped); every
# interface in quarantine, the containment the replay used to take for the prior state (rejected: it must come
# back exactly); the deny policy on the instance's role; the quarantine profile in place of the instance's own; the
# instance out of its Auto Scaling group. Each is the call that took effect when the worker died with the workflow
# task holding every containment step. Mid-compensation: the instance back in its Auto Scaling group, the rest
# (profile, interfaces) not yet restored.
KILLS = (
    Kill("ModifyNetworkInterfaceAttribute", 1),
    Kill("ModifyNetworkInterfaceAttribute", 4, decision="reject"),  # two interfaces, two moves each
    Kill("PutRolePolicy"),
    Kill("ReplaceIamInstanceProfileAssociation"),
    Kill("DetachInstances"),
    Kill("AttachInstances", decision="reject", undoing=True),
)


class Run:
    """One kill, on an account of its own, with a worker (task queue, AWS proxy) of its own: the kills run side by
    side, each waiting out its own workflow task timeout."""

    def __init__(self, stack, workload, kill: Kill, tmp_path) -> None:
        self.stack, self.workload, self.kill, self.tmp_path = stack, workload, kill, tmp_path
        self.aws = Account(workload)
        self.proxy = AwsProxy(stack.aws["AWS_ENDPOINT_URL"])
        queue = f"kill-{workload.instance_id}"
        self.direct = stack.env(**workload.worker_environment(), IRFLOW_TASK_QUEUE=queue)
        self.env = {**self.direct, "AWS_ENDPOINT_URL": self.proxy.url}
        self.workers: list[subprocess.Popen] = []

    def worker(self) -> subprocess.Popen:
        name = f"worker-{len(self.workers)}-{self.workload.instance_id}"
        self.workers.append(self.stack.group.start(name, [sys.executable, "worker.py"], env=self.env))
        return self.workers[-1]

    async def run(self, client) -> None:
        kill, aws = self.kill, self.aws
        before = {"groups": aws.eni_groups(), "profile": aws.profile(), "tags": aws.instance()["Tags"]}
        first = self.worker()
        trap = None if kill.undoing else self.proxy.trap(kill.action, first.kill, nth=kill.nth)
        finding = self.tmp_path / f"{self.workload.instance_id}.json"
        finding.write_text(json.dumps(sample_finding(self.workload.instance_id, aws.workload.account_id)))
        started = await asyncio.to_thread(self.stack.run, "starter.py", str(finding), env=self.direct)
        assert started.returncode == 0, started.stderr
        workflow_id = started.stdout.split("(workflow ", 1)[1].split(")", 1)[0]
        if trap:
            await self._dies(trap, first)
        state = await reaches(client, workflow_id, lambda s: s.status == Status.AWAITING_DECISION, "the decision", 90)
        assert_contained_once(aws, state)

        if kill.undoing:
            trap = self.proxy.trap(kill.action, first.kill, nth=kill.nth)
        argv = ("approve", workflow_id, "--as", "alice", "--eradicate", "stop", "--comment", "confirmed")
        if kill.decision == "reject":
            argv = ("reject", workflow_id, "--as", "alice", "--reason", "a pen test")
        decided = await asyncio.to_thread(self.stack.irflow, *argv)
        assert decided.returncode == 0, decided.stderr
        if kill.undoing:
            await self._dies(trap, first)
        final = await reaches(
            client, workflow_id, lambda s: s.status.is_final and bool(s.report_keys), "the report", 120
        )
        reports = aws.report_versions(final.incident_id)
        assert len(reports) == 3 and len(set(reports)) == 3, (
            f"one report (md, json, html), each written once: {reports}"
        )
        if kill.decision == "approve":
            assert final.status == Status.RESOLVED, final.failure_reason
            assert aws.instance()["State"]["Name"] == "stopped"
            assert_contained_once(aws, final)
        else:
            assert final.status == Status.ROLLED_BACK, final.failure_reason
            self._assert_restored(before, final)
        seen = self.proxy.actions
        assert seen.count("CreateSnapshot") == len(aws.volumes()), "no snapshot taken twice"
        assert seen.count("CreateSecurityGroup") == 2, "the untrack and quarantine groups, each made once"

    async def _dies(self, trap, worker) -> None:
        assert await asyncio.to_thread(trap.fired.wait, 90), f"the worker never reached {self.kill.name}"
        assert await asyncio.to_thread(worker.wait, 10) == -9
        self.worker()

    def _assert_restored(self, before: dict, final: IncidentState) -> None:
        aws, seen = self.aws, self.proxy.actions
        assert aws.eni_groups() == before["groups"], "every interface carries exactly its own groups again"
        assert aws.profile() == before["profile"]
        assert sorted(aws.instance()["Tags"], key=lambda t: t["Key"]) == sorted(before["tags"], key=lambda t: t["Key"])
        assert set(aws.deny_policies(final.incident_id).values()) == {0}
        assert aws.instance()["State"]["Name"] == "running"
        # each undone once: one call back per change (two interfaces)
        assert seen.count("AttachInstances") == 1 and seen.count("DeleteRolePolicy") == 1, seen
        assert seen.count("ModifyNetworkInterfaceAttribute") == 4 + 2, seen

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        self.proxy.close()


async def test_a_worker_killed_at_any_point_contains_once_and_the_incident_completes(stack, account, tmp_path):
    """Each kill (KILLS) on an instance of its own, all side by side; each incident, once a second worker took
    over, contained exactly once, decided, and (approved) eradicated and reported or (rejected) given back exactly
    as it was, each change undone once."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    workloads = [account, *(seed_workload(name=f"kill{n}{free_port()}") for n in range(1, len(KILLS)))]
    runs = [Run(stack, workload, kill, tmp_path) for workload, kill in zip(workloads, KILLS, strict=True)]
    try:
        outcomes = await asyncio.gather(*(run.run(client) for run in runs), return_exceptions=True)
    finally:
        await asyncio.gather(*(asyncio.to_thread(run.stop) for run in runs))
    failed = {run.kill.name: repr(outcome) for run, outcome in zip(runs, outcomes, strict=True) if outcome}
    assert not failed, failed
