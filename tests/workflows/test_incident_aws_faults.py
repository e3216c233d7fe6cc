"""AWS as it fails in real life, under whole incidents: a fifth of the activities' AWS calls throttled, answered 5xx,
timed out, or (for calls that change something) carried out with their answer lost. botocore retries most of them;
some stay for every attempt and reach the activity, which Temporal retries. Every incident still ends as it would
have: contained, decided, reported, with nothing done twice.

The faults sit at the wire (tests/workflows/faults.py, `AwsFaults`), seeded, and each test checks they fired."""

from __future__ import annotations

import json

import boto3
import pytest
from temporalio.api.enums.v1 import EventType

from irflow.models.incident import Status
from tests.support import incident_snapshots, open_incident, quarantine_groups, read_evidence, running_worker, wait_for
from tests.workflows.faults import AwsFaults
from tests.workflows.test_iam_user_playbook import _open as open_key_incident
from tests.workflows.test_iam_user_playbook import observed_user
from tests.workflows.test_s3_bucket_playbook import _open as open_bucket_incident
from tests.workflows.test_s3_bucket_playbook import observed_bucket

BLOCKED = dict.fromkeys(("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True)


@pytest.fixture
def faults(workload) -> AwsFaults:
    return AwsFaults(seed=16, rate=0.2).install()


async def _retried_by_temporal(handle) -> list[str]:
    """The activities Temporal ran more than once, from the incident's history (a local activity's attempts are in
    its marker)."""
    scheduled, retried = {}, []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.attempt > 1:
                retried.append(scheduled[started.scheduled_event_id])
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                data = json.loads(marker.details["data"].payloads[0].data)
                if data["attempt"] > 1:
                    retried.append(data["activity_type"])
    return retried


async def _assert_faults_fired(faults: AwsFaults, service: str, handle) -> None:
    """Not vacuous: faults met this playbook's own service, botocore retried some, and some reached an activity
    that Temporal then ran again."""
    calls = sum(n for (s, _), n in faults.calls.items() if s == service)
    assert faults.count(service) > 0, f"no fault met {service} in {calls} calls"
    assert faults.count(escaped=False) > 0, "botocore retried none"
    assert faults.count(escaped=True) > 0, "no fault outlasted botocore's retries"
    assert await _retried_by_temporal(handle), "Temporal retried no activity"


def _report(state) -> dict:
    reports = [e for e in state.evidence if e.kind == "report"]
    assert reports, "the report is stored"
    for report in reports:
        read_evidence(report)  # its bytes match the SHA-256 the incident recorded
    return next(json.loads(read_evidence(r)) for r in reports if r.key.endswith(".json"))


async def test_an_instance_is_contained_decided_and_reported_once_under_faults(dev_env, workload, faults):
    # The snapshot and the group are made, and the answer never comes back: made again, they would be two.
    faults.lose_answers("ec2", "CreateSnapshot")
    faults.lose_answers("ec2", "CreateSecurityGroup")
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION or s.status.is_final, 90)
        assert state.status == Status.AWAITING_DECISION, state.failure_reason
        await handle.signal("approve", {"by": "alice", "comment": "miner confirmed"})
        final = await handle.result()
    assert final.status == Status.RESOLVED, final.failure_reason

    ec2 = boto3.client("ec2", region_name=workload.region)
    groups = quarantine_groups(workload)
    assert len(groups) == 1, "one quarantine group, however often its creation was retried"
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
    )["NetworkInterfaces"]
    assert len(enis) == 2 and all([g["GroupId"] for g in e["Groups"]] == [groups[0]["GroupId"]] for e in enis)
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}])
    volume_ids = sorted(v["VolumeId"] for v in volumes["Volumes"])
    snapshots = incident_snapshots(workload, submission.incident_id)
    assert sorted(s["VolumeId"] for s in snapshots) == volume_ids, "one snapshot per volume"
    instance = ec2.describe_instances(InstanceIds=[workload.instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped"
    report = _report(final)
    assert report["status"] == Status.RESOLVED
    assert faults.count("ec2", "lost answer") >= 2
    await _assert_faults_fired(faults, "ec2", handle)


async def test_a_leaked_key_is_deactivated_decided_and_reported_under_faults(dev_env, workload, faults):
    faults.lose_answers("iam", "UpdateAccessKey")
    faults.lose_answers("iam", "PutUserPolicy")
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await open_key_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION or s.status.is_final, 90)
        assert state.status == Status.AWAITING_DECISION, state.failure_reason
        user = observed_user(workload)
        assert user["keys"] == {workload.access_key_id: "Inactive", workload.other_access_key_id: "Active"}
        assert list(user["policies"]) == [f"irflow-revoke-sessions-{submission.incident_id}"]
        await handle.signal("reject", {"by": "bob", "reason": "the deploy bot"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK, final.failure_reason
    user = observed_user(workload)
    assert user["keys"] == {workload.access_key_id: "Active", workload.other_access_key_id: "Active"}
    assert user["policies"] == {}
    assert _report(final)["status"] == Status.ROLLED_BACK
    await _assert_faults_fired(faults, "iam", handle)


async def test_a_public_bucket_is_blocked_decided_and_reported_under_faults(dev_env, workload, faults):
    faults.lose_answers("s3", "PutPublicAccessBlock")
    faults.lose_answers("s3", "PutBucketPolicy")
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_bucket_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION or s.status.is_final, 90)
        assert state.status == Status.AWAITING_DECISION, state.failure_reason
        await handle.signal("approve", {"by": "alice", "comment": "assets moved behind CloudFront"})
        final = await handle.result()
    assert final.status == Status.RESOLVED, final.failure_reason
    bucket = observed_bucket(workload)
    assert bucket["public_access_block"] == BLOCKED
    assert [s["Sid"] for s in json.loads(bucket["policy"])["Statement"]] == ["AppRole"]
    assert _report(final)["status"] == Status.RESOLVED
    await _assert_faults_fired(faults, "s3", handle)
