"""CloudTrail log files in S3, through the listener: S3's notifications name the files, their records go
through the detection rules, and files that cannot be read (missing, not gzip or JSON, over the size limit)
are dead-lettered with the reason."""

from __future__ import annotations

import json

import boto3

from irflow.devstack.demo import sample_cloudtrail_event
from irflow.intake.listener import FindingListener
from irflow.models.incident import Status
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.listener_support import _depth, _drain, _listen_until, _send
from tests.support import running_worker, wait_for
from workflows.incident import IncidentWorkflow


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
        [incident] = [
            w
            async for w in client.list_workflows(
                f"WorkflowType = 'IncidentWorkflow' AND TaskQueue = '{settings.task_queue}'"
            )
        ]
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
