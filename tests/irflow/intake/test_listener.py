"""The listener against SQS (moto in-process) and a real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import logging

import boto3
import pytest

from irflow.devstack.demo import sample_cloudtrail_event, sample_finding
from irflow.intake.listener import FindingListener, ListenerConfigurationError
from irflow.models.incident import Status
from irflow.models.settings import IrflowSettings
from irflow.temporal_client import connect
from tests.irflow.intake.listener_support import _depth, _drain, _findings_queue, _listen_until, _send
from tests.support import CORPORA, free_port, running_worker, wait_for
from workflows.incident import IncidentWorkflow


def _asff_instance_finding(instance_id: str) -> dict:
    """A Security Hub finding about an EC2 instance, from the corpus, re-pointed at our instance."""
    for line in (CORPORA / "securityhub" / "asff_findings.jsonl").read_text().splitlines():
        finding = json.loads(line)["finding"]
        resources = finding["Resources"]
        if resources[0]["Type"] == "AwsEc2Instance" and finding.get("Compliance", {}).get("Status") != "PASSED":
            finding = json.loads(json.dumps(finding))
            finding["AwsAccountId"] = "123456789012"
            finding["ProductArn"] = "arn:aws:securityhub:us-east-1::product/aws/guardduty"  # a trusted product
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
    async with running_worker(client, trusted_topic_arns=[sns_wrapped["TopicArn"]]) as settings:
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
    incidents = [
        w
        async for w in client.list_workflows(
            f"WorkflowType = 'IncidentWorkflow' AND TaskQueue = '{settings.task_queue}'"
        )
    ]
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
        runs = [
            w
            async for w in client.list_workflows(
                f"WorkflowType = 'IncidentWorkflow' AND TaskQueue = '{settings.task_queue}'"
            )
        ]
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
        [incident] = [
            w
            async for w in client.list_workflows(
                f"WorkflowType = 'IncidentWorkflow' AND TaskQueue = '{settings.task_queue}'"
            )
        ]
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
