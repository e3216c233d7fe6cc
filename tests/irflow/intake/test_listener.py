"""The listener against SQS (moto in-process) and a real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import logging

import boto3
import pytest
from botocore.exceptions import ClientError

from irflow.devstack.demo import sample_cloudtrail_event, sample_finding
from irflow.intake.listener import FindingListener, ListenerConfigurationError
from irflow.models.incident import Status
from irflow.models.settings import IrflowSettings
from irflow.temporal_client import connect
from tests.support import CORPORA, free_port, running_worker, wait_for
from workflows.incident import IncidentWorkflow


def _findings_queue(sqs, dlq: str, name: str = "findings", visibility_timeout: int = 30) -> str:
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "25"}),
        },
    )["QueueUrl"]


@pytest.fixture
def queues(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="findings-dlq")["QueueUrl"]
    return sqs, _findings_queue(sqs, dlq), dlq


def _send(sqs, queue: str, bodies: list) -> None:
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": b if isinstance(b, str) else json.dumps(b)}
            for i, b in enumerate(bodies[start : start + 10])
        ]
        assert not sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")


def _drain(sqs, queue: str) -> list[dict]:
    out = []
    while batch := sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    ).get("Messages", []):
        out += batch
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return out


def _depth(sqs, queue: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


async def _listen_until(listener: FindingListener, condition, timeout: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"timed out: {listener.stats.snapshot()}"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def _asff_instance_finding(instance_id: str) -> dict:
    """A Security Hub finding about an EC2 instance, from the corpus, re-pointed at our instance."""
    for line in (CORPORA / "securityhub" / "asff_findings.jsonl").read_text().splitlines():
        finding = json.loads(line)["finding"]
        resources = finding["Resources"]
        if resources[0]["Type"] == "AwsEc2Instance" and finding.get("Compliance", {}).get("Status") != "PASSED":
            finding = json.loads(json.dumps(finding))
            finding["AwsAccountId"] = "123456789012"
            finding["Severity"] = {"Label": "HIGH", "Normalized": 70}
            resources[0] = {**resources[0], "Id": f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"}
            finding["Resources"] = resources[:1]
            finding.pop("Region", None)
            finding.pop("Compliance", None)  # a threat detection, not a control result (those are suppressed)
            finding["Types"] = ["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B"]
            return finding
    raise AssertionError("no EC2 ASFF finding in the corpus")


async def test_findings_in_every_envelope_become_incidents_and_bad_ones_go_to_the_dead_letter_queue(
    dev_env, workload, queues
):
    sqs, queue, dlq = queues
    gd_event = sample_finding(workload.instance_id, workload.account_id, workload.region)
    other_event = sample_finding(workload.other_instance_id, workload.account_id, workload.region, finding_id="b" * 32)
    sns_wrapped = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:findings",
        "Message": json.dumps(other_event),
    }
    security_hub = {
        "version": "0",
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": "123456789012",
        "region": "us-east-1",
        "detail": {"findings": [_asff_instance_finding(workload.instance_id)]},
    }
    state_change = {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}
    _send(sqs, queue, [gd_event, sns_wrapped, security_hub, "not json {", {"hello": 1}, state_change])

    client = dev_env.client
    async with running_worker(client) as settings:
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= 6 and _depth(sqs, queue) == 0)
        state = await client.get_workflow_handle(f"ec2-123456789012-us-east-1-{workload.instance_id}").query(
            IncidentWorkflow.current_state
        )
    stats = listener.stats
    assert stats.dead_lettered == 3
    # SQS is at-least-once (moto in-process sometimes hands one message to two concurrent receives): a
    # repeat delivery is counted as joined by the listener and ignored by the incident, which checks below.
    assert stats.started == 2 and stats.joined >= 1 and stats.started + stats.joined == stats.findings
    assert _depth(sqs, queue) == 0
    dead = _drain(sqs, dlq)
    reasons = sorted(m["MessageAttributes"]["irflow-reason"]["StringValue"] for m in dead)
    assert len(dead) == 3
    assert any("not JSON" in r for r in reasons)
    assert any("not a GuardDuty finding" in r for r in reasons)
    assert any("EC2 Instance State-change Notification" in r for r in reasons)
    assert {m["Body"] for m in dead} == {"not json {", json.dumps({"hello": 1}), json.dumps(state_change)}
    incidents = [w async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}'")]
    assert sorted(w.id for w in incidents) == sorted(
        f"ec2-123456789012-us-east-1-{i}" for i in (workload.instance_id, workload.other_instance_id)
    )
    assert state.finding_deliveries == 2, "the GuardDuty and Security Hub messages, each counted once"
    assert sorted(f.source for f in state.findings_absorbed) == ["guardduty", "securityhub"], (
        "the Security Hub finding joined the GuardDuty incident"
    )


async def test_suppressed_findings_are_counted_and_deleted_without_an_incident(dev_env, workload, queues):
    sqs, queue, dlq = queues
    archived = sample_finding(workload.instance_id, finding_id="c" * 32)
    archived["detail"]["service"]["archived"] = True
    sample = sample_finding(workload.instance_id, finding_id="d" * 32)
    sample["detail"]["service"]["additionalInfo"]["sample"] = True
    tagged = sample_finding(workload.instance_id, finding_id="e" * 32)
    tagged["detail"]["resource"]["instanceDetails"]["tags"].append({"key": "irflow:suppress", "value": "true"})
    low = sample_finding(workload.instance_id, finding_id="f" * 32, severity=2.0)
    _send(sqs, queue, [archived, sample, tagged, low])
    settings = IrflowSettings(suppress_tags=["irflow:suppress=true"], min_severity="MEDIUM", task_queue="unused")
    listener = FindingListener(dev_env.client, settings, queue_urls=[queue], wait_seconds=1)
    await _listen_until(listener, lambda: listener.stats.deleted >= 4 and _depth(sqs, queue) == 0)
    # (moto's in-process SQS now and then hands one message to two receivers: counts may exceed 4)
    stats = listener.stats
    assert stats.suppressed == stats.received >= 4 and stats.started == 0 and stats.dead_lettered == 0
    assert len(stats.suppressed_by_reason) == 4, "each finding suppressed for its own reason"
    assert _depth(sqs, dlq) == 0


async def test_two_hundred_copies_make_one_incident_that_absorbs_all(dev_env, workload, queues):
    sqs, queue, _ = queues
    event = sample_finding(workload.instance_id, workload.account_id, workload.region)
    _send(sqs, queue, [event] * 200)
    client = dev_env.client
    async with running_worker(client) as settings:
        settings = settings.model_copy(update={"listener_batches_in_flight": 8})
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= 200 and _depth(sqs, queue) == 0, timeout=120)
        runs = [w async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}'")]
        assert len(runs) == 1
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, runs[0].id)
        state = await wait_for(handle, lambda s: s.finding_deliveries >= 200)
        await asyncio.sleep(0.5)
        state = await handle.query(IncidentWorkflow.current_state)
    # moto's in-process SQS sometimes hands one message to two concurrent receivers (real SQS may too:
    # it is at-least-once); the incident counts each message once, by its message id.
    assert state.finding_deliveries == 200
    assert len(state.findings_absorbed) == 1, "the same finding 200 times is one finding, delivered 200 times"
    assert listener.stats.started == 1 and listener.stats.joined == listener.stats.received - 1


async def test_without_temporal_messages_are_held_not_dead_lettered_and_the_outage_is_logged_once(
    workload, queues, caplog
):
    sqs, queue, dlq = queues
    _send(sqs, queue, [sample_finding(workload.instance_id, finding_id=f"{i:032x}") for i in range(5)])
    nowhere = await connect(address=f"127.0.0.1:{free_port()}", lazy=True)
    listener = FindingListener(nowhere, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    with caplog.at_level(logging.WARNING, logger="irflow.listener"):
        await _listen_until(listener, lambda: listener.stats.held >= 5, timeout=90)
    assert listener.stats.deleted == 0 and listener.stats.dead_lettered == 0
    assert _depth(sqs, queue) == 5 and _depth(sqs, dlq) == 0
    assert len([r for r in caplog.records if "Temporal unreachable" in r.getMessage()]) == 1
    assert listener.stats.outages == 1


async def test_a_queue_without_a_dead_letter_queue_is_refused_at_start(dev_env, aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    bare = sqs.create_queue(QueueName="no-dlq")["QueueUrl"]
    listener = FindingListener(dev_env.client, IrflowSettings(), queue_urls=[bare], wait_seconds=1)
    with pytest.raises(ListenerConfigurationError, match="no dead-letter queue"):
        await listener.run(asyncio.Event())


async def test_an_unexpected_receive_error_does_not_stop_the_listener(dev_env, workload, queues, caplog):
    sqs, queue, _ = queues
    _send(sqs, queue, [sample_finding(workload.instance_id, workload.account_id, workload.region)])
    listener = FindingListener(dev_env.client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    real_receive, failures = listener._sqs.receive_message, []

    def flaky_receive(**kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("Set changed size during iteration")  # what a racing SQS stand-in raised
        return real_receive(**kwargs)

    listener._sqs.receive_message = flaky_receive
    with caplog.at_level(logging.WARNING, logger="irflow.listener"):
        await _listen_until(listener, lambda: listener.stats.deleted >= 1)
    assert failures and listener.stats.started == 1
    assert any("cannot receive" in r.getMessage() for r in caplog.records)


async def test_cloudtrail_events_are_detected_and_a_stopped_trail_deactivates_the_callers_key(
    dev_env, workload, queues
):
    sqs, queue, dlq = queues
    stop_logging = sample_cloudtrail_event(workload, "StopLogging")
    benign = sample_cloudtrail_event(workload, "DescribeTrails", read_only=True)
    _send(sqs, queue, [benign, stop_logging])
    client = dev_env.client
    async with running_worker(client) as settings:
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= 2 and _depth(sqs, queue) == 0)
        assert listener.stats.started == 1 and listener.stats.dead_lettered == 0
        assert listener.detector.events >= 2 and sum(listener.detector.alerts.values()) >= 1
        [incident] = [w async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}'")]
        assert incident.id.startswith(f"iam-user-{workload.account_id}-")
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, incident.id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.finding.source == "irflow-detection" and state.finding.type.startswith("DefenseEvasion:")
        keys = boto3.client("iam").list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
        assert {k["AccessKeyId"]: k["Status"] for k in keys}[workload.access_key_id] == "Inactive"
        await handle.signal("reject", {"by": "bob", "reason": "test"})
        await handle.result()
    assert _depth(sqs, dlq) == 0


async def test_without_detection_cloudtrail_events_are_dead_lettered_as_not_findings(dev_env, workload, queues):
    sqs, queue, dlq = queues
    _send(sqs, queue, [sample_cloudtrail_event(workload, "StopLogging")])
    settings = IrflowSettings(detection=False, task_queue="unused")
    listener = FindingListener(dev_env.client, settings, queue_urls=[queue], wait_seconds=1)
    await _listen_until(listener, lambda: listener.stats.deleted >= 1 and _depth(sqs, queue) == 0)
    [dead] = _drain(sqs, dlq)
    assert "AWS API Call via CloudTrail" in dead["MessageAttributes"]["irflow-reason"]["StringValue"]


def _log_file_notification(bucket: str, key: str, size: int | None = None) -> dict:
    """What S3 sends to the queue when CloudTrail delivers a log file (keys arrive URL-encoded)."""
    obj = {"key": key.replace(" ", "+"), "eTag": "0"}
    if size is not None:
        obj["size"] = size
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
            }
        ]
    }


async def test_cloudtrail_log_files_in_s3_are_read_and_a_read_only_burst_contains_the_key(dev_env, workload, queues):
    """EventBridge never delivers read-only calls; CloudTrail's log files hold them. A burst of secret reads
    in a log file, announced by S3's notification, deactivates the reader's key; bad notifications are
    dead-lettered with the reason and nothing else is lost."""
    import gzip

    sqs, queue, dlq = queues
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = "org-cloudtrail-logs"
    s3.create_bucket(Bucket=bucket)
    records = [sample_cloudtrail_event(workload, "DescribeTrails", read_only=True)["detail"]]
    for n in range(6):
        read = sample_cloudtrail_event(
            workload, "GetSecretValue", source="secretsmanager.amazonaws.com", read_only=True
        )
        read["detail"].update(eventID=f"secret-read-{n}", requestParameters={"secretId": f"prod/db-{n}"})
        records.append(read["detail"])
    prefix = f"AWSLogs/{workload.account_id}/CloudTrail/us-east-1/2026/11/28"
    key = f"{prefix}/{workload.account_id}_CloudTrail_us-east-1_20261128T0500Z_a b.json.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/garbage.json.gz", Body=b"\x1f\x8bnot really gzip")
    _send(
        sqs,
        queue,
        [
            {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket},
            _log_file_notification(bucket, key),
            _log_file_notification(bucket, f"AWSLogs/{workload.account_id}/CloudTrail-Digest/us-east-1/d.json.gz"),
            _log_file_notification(bucket, f"{prefix}/gone.json.gz"),
            _log_file_notification(bucket, f"{prefix}/garbage.json.gz"),
        ],
    )
    client = dev_env.client
    async with running_worker(client) as settings:
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= 5 and _depth(sqs, queue) == 0)
        assert listener.stats.log_files == 1 and listener.stats.log_records == 7
        assert listener.detector.alerts["irflow.cloudtrail.secrets-burst"] == 1
        [incident] = [w async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}'")]
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, incident.id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.finding.type == "CredentialAccess:IAMUser/SecretsBurst"
        keys = boto3.client("iam").list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
        assert {k["AccessKeyId"]: k["Status"] for k in keys}[workload.access_key_id] == "Inactive"
        await handle.signal("reject", {"by": "bob", "reason": "test"})
        await handle.result()
    reasons = sorted(m["MessageAttributes"]["irflow-reason"]["StringValue"] for m in _drain(sqs, dlq))
    assert len(reasons) == 2, reasons
    assert any("gone.json.gz: NoSuchKey" in r for r in reasons)
    assert any("garbage.json.gz is not a CloudTrail log file" in r for r in reasons)


async def test_a_log_file_over_the_size_limit_is_dead_lettered_unread(dev_env, workload, queues):
    sqs, queue, dlq = queues
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    s3.put_object(Bucket="trail", Key="AWSLogs/big.json", Body=json.dumps({"Records": []}).encode() * 10)
    _send(
        sqs, queue, [_log_file_notification("trail", "AWSLogs/big.json"), _log_file_notification("trail", "x", 10**9)]
    )
    settings = IrflowSettings(task_queue="unused", log_file_max_bytes=64)
    listener = FindingListener(dev_env.client, settings, queue_urls=[queue], wait_seconds=1)
    await _listen_until(listener, lambda: listener.stats.deleted >= 2 and _depth(sqs, queue) == 0)
    reasons = sorted(m["MessageAttributes"]["irflow-reason"]["StringValue"] for m in _drain(sqs, dlq))
    assert len(reasons) == 2 and all("IRFLOW_LOG_FILE_MAX_BYTES=64" in r for r in reasons), reasons
    assert listener.stats.log_files == 0


async def test_messages_whose_batch_delete_failed_come_back_and_are_finished_then(dev_env, workload, queues, caplog):
    """Deletes go out as one DeleteMessageBatch per receive; when it fails nothing is lost: the messages
    reappear after their visibility timeout, are handled again and deleted."""
    from botocore.exceptions import ClientError

    sqs, _, dlq = queues
    queue = _findings_queue(sqs, dlq, name="findings-quick", visibility_timeout=1)
    low = [sample_finding(workload.instance_id, finding_id=f"{n:032x}", severity=2.0) for n in range(3)]
    _send(sqs, queue, low)
    settings = IrflowSettings(min_severity="HIGH", task_queue="unused")  # suppressed: no Temporal needed
    listener = FindingListener(dev_env.client, settings, queue_urls=[queue], wait_seconds=1)
    real_delete, calls = listener._sqs.delete_message_batch, []

    def failing_once(**kwargs):
        calls.append(len(kwargs["Entries"]))
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}, "DeleteMessageBatch")
        return real_delete(**kwargs)

    listener._sqs.delete_message_batch = failing_once
    await _listen_until(listener, lambda: listener.stats.deleted >= 3 and _depth(sqs, queue) == 0)
    assert listener.stats.received > 3  # the first batch's messages came back
    assert all(n <= 10 for n in calls) and len(calls) >= 2
    assert "could not delete" in caplog.text
    assert _depth(sqs, dlq) == 0


def _deliver_everything_twice(listener: FindingListener) -> None:
    """SQS is at-least-once: hand each received message to the listener twice, in the same receive."""
    real_receive = listener._sqs.receive_message

    def twice(**kwargs):
        response = real_receive(**kwargs)
        response["Messages"] = [copy for m in response.get("Messages", []) for copy in (m, dict(m))]
        return response

    listener._sqs.receive_message = twice


async def test_a_bad_message_delivered_twice_is_dead_lettered_once(dev_env, workload, queues):
    sqs, queue, dlq = queues
    _send(sqs, queue, ["not json {"])
    listener = FindingListener(dev_env.client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    _deliver_everything_twice(listener)
    await _listen_until(listener, lambda: listener.stats.deleted >= 1 and _depth(sqs, queue) == 0)
    assert listener.stats.received >= 2 and listener.stats.dead_letter_repeats >= 1
    assert listener.stats.dead_lettered == 1
    dead = _drain(sqs, dlq)
    assert [m["Body"] for m in dead] == ["not json {"], "one copy in the dead-letter queue"


async def test_when_dead_lettering_fails_no_delivery_of_the_message_is_deleted(dev_env, workload, queues):
    sqs, _, dlq = queues
    queue = _findings_queue(sqs, dlq, name="findings-short", visibility_timeout=1)
    _send(sqs, queue, ["not json {"])
    listener = FindingListener(dev_env.client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    _deliver_everything_twice(listener)
    real_send, refused = listener._sqs.send_message, []

    def send_once_refused(**kwargs):
        if not refused:
            refused.append(kwargs["QueueUrl"])
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "SendMessage")
        return real_send(**kwargs)

    listener._sqs.send_message = send_once_refused
    await _listen_until(listener, lambda: listener.stats.dead_lettered >= 1 and _depth(sqs, queue) == 0)
    assert refused == [dlq], "the first dead-letter send failed"
    assert listener.stats.received >= 4, "both deliveries of the first receive came back"
    dead = _drain(sqs, dlq)
    assert [m["Body"] for m in dead] == ["not json {"], "kept, and dead-lettered once it could be"
