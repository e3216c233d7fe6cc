"""The load bench's baseline: a bare Temporal workflow that makes, for one resource, the EC2 and IAM calls an
irflow incident makes up to containment (as `bench.load` recorded them), and nothing else: no finding, no
policy, no record, no evidence. Its reads run one after another in one activity, then its changes side by side,
each an activity of its own, as irflow's containment steps run.

    python -m bench.load_baseline --task-queue Q   # a worker for it (the bench starts as many as irflow has)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import boto3
    from botocore.exceptions import ClientError

TASK_QUEUE = "load-bare"
# What the probe records after containment (the incident's evidence begins at once): not containment's calls.
EVIDENCE = {"ec2:CreateSnapshot", "ec2:DescribeSnapshots", "ec2:DescribeVolumes", "ec2:GetConsoleOutput"}
DENY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})
# Answers irflow expects and handles as "already so" or "none": the baseline takes them the same way.
EXPECTED = {"NoSuchEntity", "InvalidPermission.Duplicate", "IncorrectState", "InvalidParameterValue"}


def _clients() -> dict[str, Any]:
    return {name: boto3.client(name) for name in ("ec2", "iam", "autoscaling", "elbv2")}


def _reads(c: dict[str, Any], r: dict[str, str]) -> dict[str, Callable[[], object]]:
    instance, user = r.get("instance", ""), r.get("user", "")
    return {
        "ec2:DescribeInstances": lambda: c["ec2"].describe_instances(InstanceIds=[instance]),
        "ec2:DescribeInstanceAttribute": lambda: c["ec2"].describe_instance_attribute(
            InstanceId=instance, Attribute="disableApiTermination"
        ),
        "ec2:DescribeIamInstanceProfileAssociations": lambda: c["ec2"].describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance or "i-none"]}]
        ),
        "ec2:DescribeSecurityGroups": lambda: c["ec2"].describe_security_groups(GroupIds=[r["isolation_group"]]),
        "ec2:DescribeManagedPrefixLists": lambda: c["ec2"].describe_managed_prefix_lists(),
        "autoscaling:DescribeAutoScalingInstances": lambda: c["autoscaling"].describe_auto_scaling_instances(
            InstanceIds=[instance]
        ),
        "elasticloadbalancing:DescribeTargetGroups": lambda: c["elbv2"].describe_target_groups(),
        "elasticloadbalancing:DescribeTargetHealth": lambda: c["elbv2"].describe_target_health(
            TargetGroupArn=r["target_group"]
        ),
        "iam:GetInstanceProfile": lambda: c["iam"].get_instance_profile(InstanceProfileName=r["profile"]),
        "iam:ListAccountAliases": lambda: c["iam"].list_account_aliases(),
        "iam:GenerateCredentialReport": lambda: c["iam"].generate_credential_report(),
        "iam:GetAccessKeyLastUsed": lambda: c["iam"].get_access_key_last_used(AccessKeyId=r["key"]),
        "iam:GetLoginProfile": lambda: c["iam"].get_login_profile(UserName=user),
        "iam:GetUser": lambda: c["iam"].get_user(UserName=user),
        "iam:GetUserPolicy": lambda: c["iam"].get_user_policy(UserName=user, PolicyName="bare-deny"),
        "iam:ListAccessKeys": lambda: c["iam"].list_access_keys(UserName=user),
        "iam:ListAttachedUserPolicies": lambda: c["iam"].list_attached_user_policies(UserName=user),
        "iam:ListGroupsForUser": lambda: c["iam"].list_groups_for_user(UserName=user),
        "iam:ListMFADevices": lambda: c["iam"].list_mfa_devices(UserName=user),
        "iam:ListUserPolicies": lambda: c["iam"].list_user_policies(UserName=user),
        "iam:ListUserTags": lambda: c["iam"].list_user_tags(UserName=user),
    }


def _writes(c: dict[str, Any], r: dict[str, str]) -> dict[str, Callable[[int], object]]:
    """Each change, by its call's index among calls of its action (an ENI goes through the isolation group first,
    then into quarantine, as irflow's isolation does)."""
    instance, user = r.get("instance", ""), r.get("user", "")

    def eni_groups(n: int) -> object:
        eni = c["ec2"].describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
        group = r["isolation_group"] if n == 0 else r["quarantine_group"]
        return c["ec2"].modify_network_interface_attribute(
            NetworkInterfaceId=eni["NetworkInterfaces"][0]["NetworkInterfaceId"], Groups=[group]
        )

    rule = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}
    return {
        "ec2:ModifyNetworkInterfaceAttribute": eni_groups,
        "ec2:AuthorizeSecurityGroupEgress": lambda n: c["ec2"].authorize_security_group_egress(
            GroupId=r["quarantine_group"], IpPermissions=[{**rule, "IpRanges": [{"CidrIp": f"10.9.{n}.0/24"}]}]
        ),
        "ec2:AuthorizeSecurityGroupIngress": lambda n: c["ec2"].authorize_security_group_ingress(
            GroupId=r["quarantine_group"], IpPermissions=[{**rule, "IpRanges": [{"CidrIp": f"10.8.{n}.0/24"}]}]
        ),
        "ec2:AssociateIamInstanceProfile": lambda n: c["ec2"].associate_iam_instance_profile(
            IamInstanceProfile={"Name": r["profile"]}, InstanceId=instance
        ),
        "ec2:ModifyInstanceAttribute": lambda n: c["ec2"].modify_instance_attribute(
            InstanceId=instance, DisableApiTermination={"Value": True}
        ),
        "ec2:CreateTags": lambda n: c["ec2"].create_tags(
            Resources=[instance], Tags=[{"Key": "bare-quarantined", "Value": "true"}]
        ),
        "iam:PutUserPolicy": lambda n: c["iam"].put_user_policy(
            UserName=user, PolicyName="bare-deny", PolicyDocument=DENY
        ),
        "iam:TagUser": lambda n: c["iam"].tag_user(UserName=user, Tags=[{"Key": "bare-quarantined", "Value": "true"}]),
        "iam:UpdateAccessKey": lambda n: c["iam"].update_access_key(
            UserName=user, AccessKeyId=r["key"], Status="Inactive"
        ),
    }


def _call(call: Callable[[], object]) -> None:
    try:
        call()
    except ClientError as error:
        if error.response["Error"]["Code"] not in EXPECTED:
            raise


_CLIENTS: dict[str, Any] = {}


def _shared_clients() -> dict[str, Any]:
    if not _CLIENTS:
        _CLIENTS.update(_clients())
    return _CLIENTS


@activity.defn
def bare_reads(resource: dict[str, str], calls: dict[str, int]) -> None:
    reads = _reads(_shared_clients(), resource)
    for action, count in calls.items():
        if action in reads:
            for _ in range(count):
                _call(reads[action])


@activity.defn
def bare_write(resource: dict[str, str], action: str, index: int) -> None:
    _call(lambda: _writes(_shared_clients(), resource)[action](index))


def plan(calls: dict[str, int]) -> tuple[dict[str, int], list[tuple[str, int]], list[str]]:
    """The recorded calls as the workflow makes them: reads (action -> count), writes (action, index), and what
    the baseline leaves out (evidence, or an action it cannot make)."""
    reads = _reads({}, {})
    writes = _writes({}, {})
    read_calls, write_calls, left = {}, [], []
    for action, count in sorted(calls.items()):
        if action in reads:
            read_calls[action] = count
        elif action in writes:
            write_calls += [(action, n) for n in range(count)]
        else:
            left.append(action)
    return read_calls, write_calls, left


@workflow.defn(sandboxed=False)
class BareContainment:
    @workflow.run
    async def run(self, resource: dict[str, str], reads: dict[str, int], writes: list[tuple[str, int]]) -> None:
        options = {"start_to_close_timeout": timedelta(seconds=60)}
        await workflow.execute_activity(bare_reads, args=[resource, reads], **options)
        await asyncio.gather(
            *(workflow.execute_activity(bare_write, args=[resource, action, n], **options) for action, n in writes)
        )


def start_baseline_workers(stack, count: int) -> None:
    """`count` worker processes for the bare workflow, on its own task queue, beside irflow's."""
    env = {"TEMPORAL_ADDRESS": stack.temporal_address}
    for n in range(count):
        stack.group.start(f"bare-worker-{n}", [sys.executable, "-m", "bench.load_baseline"], env=env)


@dataclass
class BaselineRun:
    took: float  # seconds, all started at once -> the last done
    each: list[float]  # seconds, started -> done, each workflow
    left_out: list[str]


async def run_baseline(client, workload, resources, calls: dict[str, dict[str, int]]) -> BaselineRun:
    """One bare workflow per resource, all started at once; waits for every one."""
    ec2 = boto3.client("ec2", region_name=workload.region)
    suffix = f"{int(time.time() * 1000)}"
    groups = [
        ec2.create_security_group(GroupName=f"bare-{name}-{suffix}", Description="bare", VpcId=workload.vpc_id)[
            "GroupId"
        ]
        for name in ("isolation", "quarantine")
    ]
    shared = {
        "isolation_group": groups[0],
        "quarantine_group": groups[1],
        "profile": workload.quarantine_profile,
        "target_group": workload.target_group_arn,
    }
    plans = {kind: plan({a: n for a, n in counted.items() if a not in EVIDENCE}) for kind, counted in calls.items()}
    left_out = sorted({a for p in plans.values() for a in p[2]})
    started = time.perf_counter()

    async def one(resource) -> float:
        reads, writes, _ = plans[resource.kind]
        fields = (
            {"instance": resource.name} if resource.kind == "instance" else {"user": resource.name, "key": resource.key}
        )
        await client.execute_workflow(
            BareContainment.run,
            args=[{**shared, **fields}, reads, writes],
            id=f"bare-{resource.kind}-{resource.name}-{suffix}",
            task_queue=TASK_QUEUE,
        )
        return time.perf_counter() - started

    each = await asyncio.gather(*(one(r) for r in resources))
    return BaselineRun(max(each), list(each), left_out)


async def _work() -> None:
    from irflow.models.settings import get_settings
    from irflow.temporal_client import connect

    client = await connect()
    threads = get_settings().activity_threads  # as many as an irflow worker runs its activities in
    with ThreadPoolExecutor(max_workers=threads) as pool:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[BareContainment],
            activities=[bare_reads, bare_write],
            activity_executor=pool,
            max_concurrent_activities=threads,
        )
        await worker.run()


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    asyncio.run(_work())
