"""The listener as production runs it: EventBridge rules (the CloudFormation intake stack) deliver
findings into SQS, `starter.py` runs as a process, Temporal is a real dev server that may go away."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid

import boto3
import pytest

from irflow.devstack.demo import (
    sample_access_key_finding,
    sample_bucket_finding,
    sample_cloudtrail_event,
    sample_finding,
    sample_role_finding,
)
from irflow.devstack.demo_lambda import sample_lambda_finding, seed_lambda_function
from irflow.devstack.demo_rds import sample_rds_finding, seed_rds_instance
from irflow.devstack.intake_stack import deploy_intake_stack, publish_findings, securityhub_event
from irflow.devstack.processes import ProcessGroup, free_port, start_temporal
from irflow.models.incident import FindingDelivery, IncidentInput, IncidentState
from irflow.temporal_client import connect, ensure_search_attributes
from irflow.visibility import identity_hash
from tests.support import CORPORA, REPO

pytestmark = pytest.mark.e2e


def _queue_depth(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _instance_ids(count: int) -> list[str]:
    return [f"i-{n:017x}" for n in range(0x0A000000000000000, 0x0A000000000000000 + count)]


def _listener(stack, queue_url: str, log_name: str, temporal_address: str | None = None) -> subprocess.Popen:
    env = stack.env(IRFLOW_QUEUE_URLS=queue_url)
    if temporal_address:
        env["TEMPORAL_ADDRESS"] = temporal_address
    return stack.group.start(log_name, [sys.executable, "starter.py", "--wait-seconds", "1"], env=env)


async def _incidents(client, prefix: str) -> dict[str, int]:
    runs: dict[str, int] = {}
    async for execution in client.list_workflows(
        f"WorkflowType = 'IncidentWorkflow' AND WorkflowId STARTS_WITH '{prefix}'"
    ):
        runs[execution.id] = runs.get(execution.id, 0) + 1
    return runs


async def _delivered_finding_ids(client, workflow_id: str) -> set[str]:
    """Finding ids an incident received, read from its history (no worker needed)."""
    found: set[str] = set()
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (started,) = await client.data_converter.decode(payloads, [IncidentInput])
            found.add(started.finding.id)
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name == "add_finding":
                (delivery,) = await client.data_converter.decode(attributes.input.payloads, [FindingDelivery])
                found.add(delivery.finding.id)
    return found


async def _eventually(check, timeout: float = 90, interval: float = 0.5):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(interval)


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    return process.returncode


@pytest.fixture
def intake(stack, monkeypatch):
    for name, value in stack.aws.items():
        monkeypatch.setenv(name, value)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return deploy_intake_stack(stack_name=f"{prefix}-intake", name_prefix=prefix, visibility_timeout=5)


async def test_eventbridge_to_sqs_to_listener_starts_incidents_and_dead_letters_bad_findings(stack, account, intake):
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    no_resource = sample_finding("i-0b0000000000000aa", account.account_id, account.region, finding_id="9" * 32)
    del no_resource["detail"]["resource"]
    asff = json.loads((CORPORA / "securityhub" / "asff_findings.jsonl").read_text().splitlines()[0])["finding"]
    asff.update(AwsAccountId=account.account_id, Severity={"Label": "HIGH", "Normalized": 70})
    asff.pop("Compliance", None)  # a threat detection, not a control result (those are suppressed)
    asff["Types"] = ["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B"]
    asff["Resources"] = [
        {
            "Type": "AwsEc2Instance",
            "Id": f"arn:aws:ec2:{account.region}:{account.account_id}:instance/{account.other_instance_id}",
            "Region": account.region,
        }
    ]
    publish_findings(
        [
            sample_finding(account.instance_id, account.account_id, account.region),
            securityhub_event([asff]),
            no_resource,
        ]
    )
    listener = _listener(stack, intake.queue_url, f"listener-{intake.stack_name}")
    keys = {f"ec2-{account.account_id}-{account.region}-{i}" for i in (account.instance_id, account.other_instance_id)}
    await _eventually(lambda: _found(client, keys))
    await _eventually(lambda: _async(_queue_depth(intake.queue_url) == 0))
    assert _stop(listener) == 0
    dead = boto3.client("sqs").receive_message(
        QueueUrl=intake.dead_letter_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(dead) == 1
    assert "names no resource" in dead[0]["MessageAttributes"]["irflow-reason"]["StringValue"]
    log = (stack.group.log_dir / f"listener-{intake.stack_name}.log").read_text()
    stats = json.loads([line for line in log.splitlines() if line.startswith('{"listener_stats"')][-1])
    assert stats["listener_stats"]["started"] == 2 and stats["listener_stats"]["dead_lettered"] == 1


async def _found(client, keys: set[str]) -> bool:
    runs = await _incidents(client, "ec2-")
    return keys <= set(runs)


async def _async(value):
    return value


def _leaked_key_inactive(account) -> dict[str, str] | None:
    """The demo user's keys once the leaked one is Inactive, else None."""
    listed = boto3.client("iam").list_access_keys(UserName=account.iam_user)["AccessKeyMetadata"]
    keys = {k["AccessKeyId"]: k["Status"] for k in listed}
    return keys if keys[account.access_key_id] == "Inactive" else None


def _revocation(listed: dict, incident_prefix: str) -> list[str] | None:
    """The inline policy names once an irflow session revocation (of an incident key with this prefix) is there."""
    names = listed["PolicyNames"]
    return names if any(n.startswith(f"irflow-revoke-sessions-{incident_prefix}") for n in names) else None


async def test_findings_sent_while_temporal_is_down_all_become_incidents_once_it_is_back(stack, intake, tmp_path):
    port = free_port()
    temporal = ProcessGroup(tmp_path / "logs")
    start_temporal(temporal, port, free_port(), tmp_path / "temporal.db")
    address = f"127.0.0.1:{port}"
    client = await connect(address=address)
    await ensure_search_attributes(client)
    listener = _listener(stack, intake.queue_url, f"listener-outage-{intake.stack_name}", temporal_address=address)
    log_file = stack.group.log_dir / f"listener-outage-{intake.stack_name}.log"
    try:
        temporal.stop()  # Temporal goes away; the listener keeps running
        instances = _instance_ids(50)
        publish_findings([sample_finding(i, finding_id=f"{n:032x}") for n, i in enumerate(instances)])
        await _eventually(lambda: _async("Temporal unreachable" in log_file.read_text()))  # it met the outage
        assert _queue_depth(intake.dead_letter_queue_url) == 0
        start_temporal(temporal, port, free_port(), tmp_path / "temporal.db")
        client = await connect(address=address)
        keys = {f"ec2-123456789012-us-east-1-{i}" for i in instances}
        runs = await _eventually(lambda: _found_runs(client, keys), timeout=120)
        assert all(count == 1 for count in runs.values())
        await _eventually(lambda: _async(_queue_depth(intake.queue_url) == 0))
        assert _queue_depth(intake.dead_letter_queue_url) == 0
        assert _stop(listener) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
        temporal.stop()
    log = log_file.read_text()
    assert log.count("Temporal unreachable") == 1, "one line per outage, not one per message"
    assert "Temporal reachable again" in log


async def test_a_listener_stopped_while_temporal_is_down_exits_0_and_deletes_no_finding(stack, intake):
    """SIGTERM (a rolling restart) while the listener holds findings it could not hand to Temporal: it exits 0,
    every message stays on the queue, none is dead-lettered, and the next listener makes each an incident."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    instances = _instance_ids(130)[120:]  # 10 resources not used by other tests
    publish_findings([sample_finding(i, finding_id=uuid.uuid4().hex) for i in instances])
    name = f"listener-stopped-{intake.stack_name}"
    first = _listener(stack, intake.queue_url, name, temporal_address=f"127.0.0.1:{free_port()}")  # no Temporal
    try:
        await _eventually(lambda: _async("Temporal unreachable" in (stack.group.log_dir / f"{name}.log").read_text()))
        assert _stop(first) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert _queue_depth(intake.queue_url) == len(instances), "a message left the queue before Temporal had it"
    assert _queue_depth(intake.dead_letter_queue_url) == 0
    second = _listener(stack, intake.queue_url, f"listener-after-stop-{intake.stack_name}")
    try:
        keys = {f"ec2-123456789012-us-east-1-{i}" for i in instances}
        runs = await _eventually(lambda: _found_runs(client, keys), timeout=120)
        assert all(count == 1 for count in runs.values())
        await _eventually(lambda: _async(_queue_depth(intake.queue_url) == 0))
        assert _stop(second) == 0
    finally:
        if second.poll() is None:
            second.kill()


async def _found_runs(client, keys: set[str]) -> dict[str, int] | None:
    runs = await _incidents(client, "ec2-")
    wanted = {k: v for k, v in runs.items() if k in keys}
    return wanted if set(wanted) == keys else None


async def test_a_listener_killed_mid_batch_loses_nothing_and_duplicates_no_incident(stack, intake):
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    instances = _instance_ids(120)[100:]  # 20 resources not used by other tests
    sent = {}
    events = []
    for n in range(100):
        instance = instances[n % 20]
        finding_id = uuid.uuid4().hex
        sent[finding_id] = instance
        events.append(sample_finding(instance, finding_id=finding_id))
    publish_findings(events)
    first = _listener(stack, intake.queue_url, f"listener-killed-{intake.stack_name}")
    await _eventually(lambda: _any_incident(client, instances), timeout=60, interval=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = _listener(stack, intake.queue_url, f"listener-restarted-{intake.stack_name}")
    try:
        await _eventually(lambda: _async(_queue_depth(intake.queue_url) == 0), timeout=120)
        assert _stop(second) == 0
    finally:
        if second.poll() is None:
            second.kill()
    keys = {f"ec2-123456789012-us-east-1-{i}": i for i in instances}
    runs = await _incidents(client, "ec2-")
    assert {k: runs.get(k) for k in keys} == dict.fromkeys(keys, 1), "every resource has exactly one incident"
    received: set[str] = set()
    for key in keys:
        received |= await _delivered_finding_ids(client, key)
    assert set(sent) <= received, f"lost findings: {set(sent) - received}"
    assert _queue_depth(intake.dead_letter_queue_url) == 0


async def _any_incident(client, instances: list[str]) -> bool:
    runs = await _incidents(client, "ec2-")
    return any(f"ec2-123456789012-us-east-1-{i}" in runs for i in instances)


def test_starter_without_queue_configuration_says_so(stack):
    result = subprocess.run(
        [sys.executable, "starter.py"],
        cwd=REPO,
        env=stack.env(IRFLOW_QUEUE_URLS=""),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "IRFLOW_QUEUE_URLS" in result.stderr


async def test_a_finding_no_playbook_can_contain_is_triaged_end_to_end(stack, account, intake):
    """EKS finding → EventBridge → SQS → listener → triage-only incident (worker process) → CLI approve."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    event = sample_finding(account.instance_id, account.account_id, account.region, finding_id="7" * 32)
    event["detail"]["type"] = "Discovery:Kubernetes/SuccessfulAnonymousAccess"
    event["detail"]["resource"] = {
        "resourceType": "EKSCluster",
        "eksClusterDetails": {"name": f"c-{intake.stack_name}"},
    }
    env = stack.env(**account.worker_environment(), IRFLOW_QUEUE_URLS=intake.queue_url)
    stack.group.start(f"worker-triage-{intake.stack_name}", [sys.executable, "worker.py"], env=env)
    listener = stack.group.start(
        f"listener-triage-{intake.stack_name}", [sys.executable, "starter.py", "--wait-seconds", "1"], env=env
    )
    publish_findings([event])
    key = f"triage-ekscluster-{account.account_id}-{account.region}-c-{intake.stack_name}"

    async def awaiting():
        try:
            state = await client.get_workflow_handle(key).query("current_state", result_type=IncidentState)
        except Exception:  # noqa: BLE001 (not started or not picked up yet)
            return None
        return state if state.status == "awaiting_decision" else None

    state = await _eventually(awaiting)
    assert state.playbook == "triage-only"
    assert {e.kind for e in state.evidence} >= {"finding", "related-resources", "manifest"}
    approved = stack.irflow("approve", key, "--as", "alice", "--comment", "handled in the cluster", env=env)
    assert approved.returncode == 0, approved.stderr
    final = await _eventually(lambda: _final(client, key))
    assert final.status == "resolved"
    assert _stop(listener) == 0


async def _final(client, key: str):
    state = await client.get_workflow_handle(key).query("current_state", result_type=IncidentState)
    return state if state.status.is_final else None


async def test_a_leaked_access_key_is_deactivated_end_to_end(stack, account, intake):
    """AccessKey finding → EventBridge → SQS → listener → iam-user-credentials incident (worker process)."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    env = stack.env(**account.worker_environment(), IRFLOW_QUEUE_URLS=intake.queue_url)
    stack.group.start(f"worker-iam-{intake.stack_name}", [sys.executable, "worker.py"], env=env)
    listener = stack.group.start(
        f"listener-iam-{intake.stack_name}", [sys.executable, "starter.py", "--wait-seconds", "1"], env=env
    )
    publish_findings([sample_access_key_finding(account.iam_user, account.access_key_id, account.account_id)])
    iam = boto3.client("iam")

    keys = await _eventually(lambda: _async(_leaked_key_inactive(account)))
    assert keys[account.other_access_key_id] == "Active"

    await _eventually(lambda: _async(_revocation(iam.list_user_policies(UserName=account.iam_user), "")))
    runs = await _incidents(client, "iam-user-")
    assert len(runs) == 1 and account.iam_user not in next(iter(runs))
    assert _stop(listener) == 0


async def test_a_public_bucket_is_locked_down_end_to_end(stack, account, intake):
    """S3 finding → EventBridge → SQS → listener → s3-bucket incident (worker process)."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    env = stack.env(**account.worker_environment(), IRFLOW_QUEUE_URLS=intake.queue_url)
    stack.group.start(f"worker-s3-{intake.stack_name}", [sys.executable, "worker.py"], env=env)
    listener = stack.group.start(
        f"listener-s3-{intake.stack_name}", [sys.executable, "starter.py", "--wait-seconds", "1"], env=env
    )
    publish_findings([sample_bucket_finding(account.public_bucket, account.account_id, account.region)])
    s3 = boto3.client("s3")

    async def blocked():
        try:
            block = s3.get_public_access_block(Bucket=account.public_bucket)["PublicAccessBlockConfiguration"]
        except s3.exceptions.ClientError:
            return None
        return block if all(block.values()) else None

    await _eventually(blocked)
    statements = json.loads(s3.get_bucket_policy(Bucket=account.public_bucket)["Policy"])["Statement"]
    assert all(s.get("Principal") != "*" for s in statements)
    assert _stop(listener) == 0


async def test_stolen_instance_role_credentials_end_to_end(stack, account, intake):
    """Role-session finding → EventBridge → SQS → listener → iam-role-sessions incident (worker process),
    which opens the source instance's incident from inside the worker: the role's older sessions are
    denied and the instance is isolated."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    env = stack.env(**account.worker_environment(), IRFLOW_QUEUE_URLS=intake.queue_url)
    stack.group.start(f"worker-role-{intake.stack_name}", [sys.executable, "worker.py"], env=env)
    listener = stack.group.start(
        f"listener-role-{intake.stack_name}", [sys.executable, "starter.py", "--wait-seconds", "1"], env=env
    )
    iam = boto3.client("iam")
    role_id = iam.get_role(RoleName=account.role_name)["Role"]["RoleId"]
    publish_findings(
        [sample_role_finding(account.role_name, role_id, account.instance_id, account.account_id, account.region)]
    )

    await _eventually(lambda: _async(_revocation(iam.list_role_policies(RoleName=account.role_name), "iam-role-")))
    isolated = await _eventually(lambda: _async(_isolated(account)))
    assert isolated == {"quarantine"}
    assert len(await _incidents(client, "iam-role-")) == 1
    assert len(await _incidents(client, f"ec2-{account.account_id}-{account.region}-{account.instance_id}")) == 1
    assert _stop(listener) == 0


def _isolated(account) -> set[str] | None:
    ec2 = boto3.client("ec2", region_name=account.region)
    interfaces = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [account.instance_id]}]
    )["NetworkInterfaces"]
    names = {g["GroupName"].removeprefix("irflow-") for interface in interfaces for g in interface["Groups"]}
    return names if names == {"quarantine"} else None


def _start_pipeline(stack, account, intake, name: str):
    env = stack.env(**account.worker_environment(), IRFLOW_QUEUE_URLS=intake.queue_url)
    stack.group.start(f"worker-{name}-{intake.stack_name}", [sys.executable, "worker.py"], env=env)
    return stack.group.start(
        f"listener-{name}-{intake.stack_name}", [sys.executable, "starter.py", "--wait-seconds", "1"], env=env
    )


async def test_a_compromised_lambda_function_is_throttled_end_to_end(stack, account, intake):
    """Lambda finding → EventBridge → SQS → listener → lambda-function incident (worker process)."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    function = seed_lambda_function(account.account_id, account.region, name=f"e2e{free_port()}")
    listener = _start_pipeline(stack, account, intake, "lambda")
    publish_findings(
        [
            sample_lambda_finding(
                function.function_name, function.function_arn, function.role_arn, account.account_id, account.region
            )
        ]
    )
    lambda_ = boto3.client("lambda", region_name=account.region)

    async def throttled():
        concurrency = lambda_.get_function_concurrency(FunctionName=function.function_name)
        return concurrency if concurrency.get("ReservedConcurrentExecutions") == 0 else None

    await _eventually(throttled)
    iam = boto3.client("iam")

    await _eventually(lambda: _async(_revocation(iam.list_role_policies(RoleName=function.role_name), "lambda-")))
    assert list(await _incidents(client, f"lambda-{account.account_id}-{account.region}-{function.function_name}"))
    assert _stop(listener) == 0


async def test_a_database_with_a_suspicious_login_is_made_private_end_to_end(stack, account, intake):
    """RDS finding → EventBridge → SQS → listener → rds-instance incident (worker process)."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    database = seed_rds_instance(
        account.account_id, account.region, account.vpc_id, account.subnet_ids, name=f"e2e{free_port()}"
    )
    listener = _start_pipeline(stack, account, intake, "rds")
    publish_findings([sample_rds_finding(database.db_instance_id, account.account_id, account.region)])
    rds = boto3.client("rds", region_name=account.region)

    ec2 = boto3.client("ec2", region_name=account.region)

    async def private_and_quarantined():
        [instance] = rds.describe_db_instances(DBInstanceIdentifier=database.db_instance_id)["DBInstances"]
        groups = [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]]
        names = [g["GroupName"] for g in ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]]
        return instance if not instance["PubliclyAccessible"] and names == ["irflow-quarantine"] else None

    await _eventually(private_and_quarantined)
    snapshots = await _eventually(
        lambda: _async(
            rds.describe_db_snapshots(DBInstanceIdentifier=database.db_instance_id, SnapshotType="manual")[
                "DBSnapshots"
            ]
            or None
        )
    )
    assert len(snapshots) == 1
    assert _stop(listener) == 0


async def test_a_cloudtrail_call_is_detected_and_contained_end_to_end(stack, account, intake):
    """CloudTrail API call → EventBridge → SQS → listener (detection rules) → iam-user incident: the key
    that stopped the trail is Inactive, seconds after the call, without waiting for GuardDuty."""
    client = await connect(address=stack.temporal_address)
    await ensure_search_attributes(client)
    listener = _start_pipeline(stack, account, intake, "detect")
    publish_findings([sample_cloudtrail_event(account, "StopLogging")])
    await _eventually(lambda: _async(_leaked_key_inactive(account)))
    query = f"WorkflowType = 'IncidentWorkflow' AND IrflowResourceId = '{identity_hash(account.iam_user)}'"

    async def found():
        return [w async for w in client.list_workflows(query)] or None

    [incident] = await _eventually(found)
    state = await client.get_workflow_handle(incident.id).query("current_state", result_type=IncidentState)
    assert state.finding.source == "irflow-detection" and state.finding.type.startswith("DefenseEvasion:")
    assert _stop(listener) == 0
