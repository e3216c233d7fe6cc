"""No loops: a rejected incident's undo never re-opens an incident.

Reject an S3 incident, then replay the CloudTrail events of its undo through the listener: no new incident opens,
and the bucket stays as the analyst left it. The control: the same records made by another principal do open
an incident (the undo restores a public policy and removes the public access block: what an attacker does).
Worker, listener, SQS and S3 are the real code against the Temporal dev server and moto in-process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from irflow.devstack.demo import sample_bucket_finding
from irflow.intake.listener import FindingListener
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from tests.irflow.intake.listener_support import _depth, _findings_queue, _listen_until, _send
from tests.support import running_worker, wait_for
from tests.workflows.test_s3_bucket_playbook import observed_bucket
from workflows.incident import IncidentWorkflow

MALLORY = {
    "type": "IAMUser",
    "principalId": "AIDAEXAMPLEMALLORY01",
    "arn": "arn:aws:iam::{account}:user/mallory",
    "userName": "mallory",
    "accessKeyId": "AKIAEXAMPLEMALLORY01",
}


def _worker_identity() -> dict:
    """Who the worker acts as, as STS (moto's) reports it: the userIdentity CloudTrail would record."""
    me = boto3.client("sts").get_caller_identity()
    return {
        "type": "IAMUser",
        "principalId": me["UserId"],
        "arn": me["Arn"],
        "accountId": me["Account"],
        "userName": me["Arn"].rsplit("/", 1)[-1],
        "accessKeyId": "ASIAEXAMPLEIRFLOW001",
    }


def _undo_calls(bucket: str, prior: dict) -> list[tuple[str, dict]]:
    """The calls the S3 undo makes to restore `prior` (activities/s3_bucket.py, activities/tagging.py), in
    order, as (CloudTrail event name, requestParameters)."""
    tags = [{"Key": k, "Value": v} for k, v in prior["tags"].items()]
    calls = [("PutBucketTagging", {"bucketName": bucket, "Tagging": {"TagSet": {"Tag": tags}}, "tagging": ""})]
    if prior["public_access_block"] is None:
        calls.append(("DeleteBucketPublicAccessBlock", {"bucketName": bucket, "publicAccessBlock": ""}))
    else:
        configuration = {"PublicAccessBlockConfiguration": prior["public_access_block"], "bucketName": bucket}
        calls.append(("PutBucketPublicAccessBlock", configuration))
    calls.append(("PutBucketPolicy", {"bucketName": bucket, "bucketPolicy": json.loads(prior["policy"]), "policy": ""}))
    return calls


def _cloudtrail_events(workload, identity: dict, calls: list[tuple[str, dict]], tag: str) -> list[dict]:
    """The EventBridge events ("AWS API Call via CloudTrail") AWS would deliver for `calls` made by `identity`."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    identity = {**identity, "arn": identity["arn"].format(account=workload.account_id)}
    identity.setdefault("accountId", workload.account_id)
    return [
        {
            "version": "0",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3",
            "account": workload.account_id,
            "region": workload.region,
            "detail": {
                "eventVersion": "1.09",
                "userIdentity": identity,
                "eventTime": now,
                "eventSource": "s3.amazonaws.com",
                "eventName": name,
                "awsRegion": workload.region,
                "sourceIPAddress": "198.51.100.7",
                "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0",
                "requestParameters": {**parameters, "Host": f"{parameters['bucketName']}.s3.amazonaws.com"},
                "responseElements": None,
                "eventID": f"{tag}-{n}-{name}",
                "readOnly": False,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": workload.account_id,
                "eventCategory": "Management",
            },
        }
        for n, (name, parameters) in enumerate(calls)
    ]


@pytest.fixture
def queues(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="findings-dlq")["QueueUrl"]
    return sqs, _findings_queue(sqs, dlq), dlq


async def _runs(client, settings) -> set[tuple[str, str]]:
    """Every workflow run on the worker's task queue: (workflow id, run id)."""
    return {(w.id, w.run_id) async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}'")}


async def test_a_rejected_incidents_undo_replayed_through_the_listener_opens_nothing(dev_env, workload, queues):
    sqs, queue, dlq = queues
    client = dev_env.client
    before = observed_bucket(workload)
    async with running_worker(client, decisions_require_proof=False) as settings:
        event = sample_bucket_finding(workload.public_bucket, workload.account_id, workload.region)
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "public on purpose: the website"})
        assert (await handle.result()).status == Status.ROLLED_BACK
        rejected_run = (await handle.describe()).run_id
        known = await _runs(client, settings)  # the incident, and whatever it opened itself
        assert (submission.workflow_id, rejected_run) in known
        left = observed_bucket(workload)
        assert left == before, "the analyst's bucket: public again, as it was"
        undo = _undo_calls(workload.public_bucket, left)

        # The undo's own CloudTrail records, made by irflow: nothing opens, nothing changes.
        _send(sqs, queue, _cloudtrail_events(workload, _worker_identity(), undo, "irflow"))
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= len(undo) and _depth(sqs, queue) == 0)
        assert sum(listener.detector.own.values()) == len(undo)
        assert not listener.detector.alerts and listener.stats.started == 0
        assert await _runs(client, settings) == known, "no new incident"
        assert observed_bucket(workload) == left
        assert _depth(sqs, dlq) == 0

        # The control: the very same calls by someone else are what an attacker does; they open an incident.
        _send(sqs, queue, _cloudtrail_events(workload, MALLORY, undo, "mallory"))
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= len(undo) and _depth(sqs, queue) == 0)
        assert not listener.detector.own
        assert {"irflow.s3.public-access-block-removed", "irflow.s3.bucket-policy-public"} <= set(
            listener.detector.alerts
        )
        assert listener.stats.started >= 1
        opened = await _runs(client, settings) - known
        assert (submission.workflow_id, rejected_run) not in opened
        assert submission.workflow_id in {workflow_id for workflow_id, _ in opened}, "the bucket's incident re-opens"
        for workflow_id, run_id in opened:  # leave nothing running
            again = client.get_workflow_handle_for(IncidentWorkflow.run, workflow_id, run_id=run_id)
            await wait_for(again, lambda s: s.status == Status.AWAITING_DECISION)
            await again.signal("reject", {"by": "bob", "reason": "test control"})
            await again.result()
