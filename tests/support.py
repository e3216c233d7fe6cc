"""Helpers shared by the tests: paths, a worker on its own task queue, waiting on incident state."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import boto3
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from irflow.codec import with_payload_codec
from irflow.devstack.approvers import DemoApprover, seed_approvers
from irflow.devstack.demo import DEMO_APPROVERS, DemoWorkload, sample_finding
from irflow.devstack.processes import ProcessGroup, start_identity_moto_on_free_port
from irflow.intake.submit import Submission, submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Status
from irflow.models.settings import IrflowSettings, get_settings
from tests.data import CORPORA  # noqa: F401  (the tests' data, re-exported)
from worker import build_worker
from workflows.incident import IncidentWorkflow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def another_connection(client: Client, payload_key_id: str | None = None) -> Client:
    """A second connection to `client`'s server (as another process would have), with its converter; with
    `payload_key_id`, one that seals its payloads under that KMS key (irflow.codec), as irflow's clients do."""
    converter = with_payload_codec(pydantic_data_converter, payload_key_id) if payload_key_id else None
    return await Client.connect(
        client.service_client.config.target_host,
        namespace=client.namespace,
        data_converter=converter or client.data_converter,
    )


@asynccontextmanager
async def running_worker(client: Client, activities=None, **settings) -> AsyncIterator[IrflowSettings]:
    """An in-process worker on a fresh task queue, so tests never pick up each other's incidents."""
    # In-process moto is CPU-bound Python: many activity threads starve the workflow thread of the GIL
    # and trip Temporal's 2-second deadlock detector. Against AWS, activities wait on I/O instead.
    settings.setdefault("activity_threads", 6)
    settings.setdefault("approvers", DEMO_APPROVERS)
    # Names on trust (demo mode), unless a test is about decision proofs (tests/workflows/test_decisions_proof.py).
    settings.setdefault("decisions_require_proof", False)
    configured = IrflowSettings(task_queue=f"irflow-test-{uuid.uuid4().hex[:10]}", **settings)
    with ThreadPoolExecutor(max_workers=configured.activity_threads) as executor:
        # The sandbox stays on; only the 2-second deadlock detector is off (debug mode): in-process moto
        # starves the workflow thread of the GIL on 2 busy cores, which it mistakes for a deadlock. The
        # worker processes of the end-to-end tests, like production, keep it.
        async with build_worker(client, configured, executor, activities, debug_mode=True):
            yield configured


# The people of the decision-proof tests: IAM users in an identity moto server that checks signatures.
IDENTITY_PEOPLE = {
    "alice": {"roles": ["approver"]},
    "bob": {"roles": ["approver"]},
    "dave": {"roles": ["analyst"]},
    "mallory": {"roles": []},  # has keys, is no approver
}


@contextmanager
def identity_sts(
    log_dir: Path, people: dict[str, dict] = IDENTITY_PEOPLE
) -> Iterator[tuple[str, dict[str, DemoApprover]]]:
    """(the STS endpoint URL of a moto server that checks SigV4 signatures, its users by name), stopped by pid."""
    group = ProcessGroup(log_dir)
    try:
        url = f"http://127.0.0.1:{start_identity_moto_on_free_port(group)}"
        yield url, {a.name: a for a in seed_approvers(url, people)}
    finally:
        group.stop()


async def open_incident(
    client: Client, settings: IrflowSettings, workload: DemoWorkload, **finding
) -> tuple[Submission, WorkflowHandle]:
    event = sample_finding(workload.instance_id, workload.account_id, workload.region, **finding)
    submission = await submit(client, parse_guardduty(event), settings)
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def wait_for(
    handle: WorkflowHandle, predicate: Callable[[IncidentState], bool], timeout: float = 30
) -> IncidentState:
    deadline = asyncio.get_running_loop().time() + timeout
    state = None
    while asyncio.get_running_loop().time() < deadline:
        state = await handle.query("current_state", result_type=IncidentState)
        if predicate(state):
            return state
        await asyncio.sleep(0.1)
    actions = [(a.name, a.status, a.error) for a in state.actions] if state else None
    raise AssertionError(
        f"timed out; last state: status={state and state.status} phase={state and state.phase} "
        f"failure={state and state.failure_reason} actions={actions}"
    )


async def reject_open_incidents(client: Client, workflow_ids) -> None:
    """A test's incidents ended: each waiting for a decision is rejected (undone) and followed to its end."""
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION or s.status.is_final)
        if not state.status.is_final:
            await handle.signal("reject", {"by": "bob", "reason": "test done"})
            await handle.result()


def observed_instance(workload: DemoWorkload) -> dict:
    """What a responder would check on the instance, read straight from (moto's) AWS."""
    ec2 = boto3.client("ec2", region_name=workload.region)
    instance = ec2.describe_instances(InstanceIds=[workload.instance_id])["Reservations"][0]["Instances"][0]
    enis = {
        e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"])
        for e in ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
        )["NetworkInterfaces"]
    }
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    membership = autoscaling.describe_auto_scaling_instances(InstanceIds=[workload.instance_id])["AutoScalingInstances"]
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[workload.auto_scaling_group])[
        "AutoScalingGroups"
    ][0]
    elbv2 = boto3.client("elbv2", region_name=workload.region)
    targets = sorted(
        (t["Target"]["Id"], t["Target"].get("Port"))
        for t in elbv2.describe_target_health(TargetGroupArn=workload.target_group_arn)["TargetHealthDescriptions"]
        if t["TargetHealth"]["State"] != "draining"  # draining targets get no traffic
    )
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [workload.instance_id]}]
    )["IamInstanceProfileAssociations"]
    iam = boto3.client("iam", region_name=workload.region)
    return {
        "state": instance["State"]["Name"],
        "enis": enis,
        "asg_member": [m["AutoScalingGroupName"] for m in membership],
        "asg_sizes": (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]),
        "target_groups": [t for t in targets if t[0] == workload.instance_id],
        "profiles": sorted(a["IamInstanceProfile"]["Arn"] for a in associations if a["State"] == "associated"),
        "termination_protection": ec2.describe_instance_attribute(
            InstanceId=workload.instance_id, Attribute="disableApiTermination"
        )["DisableApiTermination"]["Value"],
        "shutdown_behavior": ec2.describe_instance_attribute(
            InstanceId=workload.instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )["InstanceInitiatedShutdownBehavior"]["Value"],
        "tags": {t["Key"]: t["Value"] for t in instance.get("Tags", [])},
        "role_policies": sorted(iam.list_role_policies(RoleName=workload.role_name)["PolicyNames"]),
    }


def only_forensic_egress(permissions: list[dict]) -> bool:
    """HTTPS to the configured forensic egress (tests/activities/test_forensic_egress.py) and nothing else: with
    none configured, no egress at all."""
    kinds = {
        "IpRanges": "CidrIp",
        "Ipv6Ranges": "CidrIpv6",
        "PrefixListIds": "PrefixListId",
        "UserIdGroupPairs": "GroupId",
    }
    rules = {
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), t[key])
        for p in permissions
        for kind, key in kinds.items()
        for t in p.get(kind, [])
    }
    return rules == {("tcp", 443, 443, i) for i in get_settings().forensic_egress}


def quarantine_groups(workload: DemoWorkload) -> list[dict]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    return ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [workload.vpc_id]},
            {"Name": "tag:irflow:role", "Values": ["quarantine"]},
        ]
    )["SecurityGroups"]


def incident_snapshots(workload: DemoWorkload, incident_id: str) -> list[dict]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    return ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:irflow:incident-id", "Values": [incident_id]}]
    )["Snapshots"]


def notifications(workload: DemoWorkload) -> list[dict]:
    """Every SNS message published so far (topics are subscribed to an SQS queue by the demo)."""
    import json

    sqs = boto3.client("sqs", region_name=workload.region)
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=workload.notifications_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not batch:
            return messages
        for m in batch:
            body = json.loads(m["Body"])
            messages.append(
                {"topic": body.get("TopicArn"), "subject": body.get("Subject"), **json.loads(body["Message"])}
            )
            sqs.delete_message(QueueUrl=workload.notifications_queue_url, ReceiptHandle=m["ReceiptHandle"])


def setting(monkeypatch, **values: object) -> None:
    """IRFLOW_<NAME> set to each value (`setting(monkeypatch, evidence_bucket="b")`), the settings read afresh."""
    for name, value in values.items():
        monkeypatch.setenv(f"IRFLOW_{name.upper()}", str(value))
    get_settings.cache_clear()


def member_session(account_id: str, region: str = "us-east-1") -> boto3.session.Session:
    """Credentials in another account, the way its administrator would have them (moto keeps each
    account's state apart and tells them by the assumed role's account)."""
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="admin"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


def read_evidence(evidence) -> bytes:
    """An evidence object's bytes, as stored (that version), checked against its recorded SHA-256."""
    body = boto3.client("s3").get_object(Bucket=evidence.bucket, Key=evidence.key, VersionId=evidence.version_id)
    raw = body["Body"].read()
    assert hashlib.sha256(raw).hexdigest() == evidence.sha256, f"{evidence.key}: bytes do not match their hash"
    return raw


def act(containment, step_input):
    """Run a containment step exactly as the playbook does: on the argument it makes from the step input."""
    return containment.activity(containment.argument(step_input))


def undo(containment, step_input):
    """Run a containment step's undo as the incident would: on the same argument the step took."""
    return containment.undo(containment.argument(step_input))


def assert_step_contract(containment, step_input, observe) -> None:
    """What every containment step promises, read back from the account by `observe()`: its undo alone
    changes nothing; the step changes the resource, and again changes nothing; its undo restores exactly
    what was there, and again changes nothing."""
    before = observe()
    assert undo(containment, step_input).changed is False, "an undo without its step changes nothing"
    assert observe() == before
    assert act(containment, step_input).changed is True
    contained = observe()
    assert contained != before
    assert act(containment, step_input).changed is False
    assert observe() == contained
    assert undo(containment, step_input).changed is True
    assert observe() == before
    assert undo(containment, step_input).changed is False
    assert observe() == before
