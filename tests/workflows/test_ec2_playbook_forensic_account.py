"""The EC2 playbook with a forensic account (issue 13, parts 5 and 6), through a whole incident: every snapshot is
digested from its blocks, copied into the forensic account (a second moto account) under that account's KMS
key, and the copy's digest matches."""

from __future__ import annotations

import threading

import boto3
from temporalio import activity

from activities import all_activities
from irflow.models.incident import Status
from irflow.models.settings import get_settings
from tests.activities.test_snapshots import FORENSIC_ACCOUNT, independent_digest
from tests.support import member_session, open_incident, read_evidence, running_worker, wait_for
from tests.workflows.faults import _takes_what, real


async def test_every_snapshot_is_digested_and_copied_to_the_forensic_account(dev_env, workload, monkeypatch):
    forensic = member_session(FORENSIC_ACCOUNT, workload.region)
    key = forensic.client("kms").create_key(Description="forensic evidence")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("IRFLOW_FORENSIC_ACCOUNT_ID", FORENSIC_ACCOUNT)
    monkeypatch.setenv("IRFLOW_FORENSIC_KMS_KEY_ID", key)
    get_settings.cache_clear()
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        state = await wait_for(
            handle,
            lambda s: s.status == Status.AWAITING_DECISION and any(snap.copy_snapshot_id for snap in s.snapshots),
        )
        await handle.signal("approve", {"by": "alice", "comment": "confirmed", "eradication": "stop"})
        final = await handle.result()

    source_ebs, forensic_ebs = boto3.client("ebs", region_name=workload.region), forensic.client("ebs")
    copies = {
        s["SnapshotId"]: s
        for s in forensic.client("ec2").describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "tag:irflow:incident-id", "Values": [final.incident_id]}]
        )["Snapshots"]
    }
    assert len(final.snapshots) == 2 and final.snapshots == state.snapshots
    for snapshot in final.snapshots:
        assert (snapshot.sha256, snapshot.block_count) == independent_digest(source_ebs, snapshot.snapshot_id)
        assert snapshot.copy_account_id == FORENSIC_ACCOUNT and snapshot.copy_kms_key_id == key
        copy = copies[snapshot.copy_snapshot_id]
        assert copy["Encrypted"] and copy["KmsKeyId"] == key and copy["State"] == "completed"
        assert snapshot.copy_digest_matches is True and snapshot.original_deleted is False
        assert snapshot.copy_sha256 == independent_digest(forensic_ebs, snapshot.copy_snapshot_id)[0] == snapshot.sha256
    assert len(copies) == 2

    markdown = read_evidence(next(e for e in final.evidence if e.key.endswith("report/report.md"))).decode()
    for snapshot in final.snapshots:
        assert snapshot.copy_snapshot_id in markdown and snapshot.sha256 in markdown


async def test_the_analyst_is_asked_while_snapshots_are_still_digested_and_the_report_waits(dev_env, workload):
    """A large volume takes hours to complete and read: the decision does not wait for it, the report does."""
    release = threading.Event()
    digest = real("digest_snapshot")

    def slow_digest(step):
        while not release.wait(0.2):
            activity.heartbeat()
        return digest(step)

    stand_in = activity.defn(name="digest_snapshot")(_takes_what(digest, slow_digest))
    activities = [a for a in all_activities() if a is not digest] + [stand_in]
    client = dev_env.client
    async with running_worker(client, activities=activities) as settings:
        _, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.pending_decision is not None)
        assert state.pending_decision.kind == "eradication" and all(s.sha256 is None for s in state.snapshots)
        await handle.signal("approve", {"by": "alice", "comment": "confirmed", "eradication": "stop"})
        state = await wait_for(handle, lambda s: s.phase == "post_incident")
        assert state.report_keys == [], "the report waits for the digests"
        release.set()
        final = await handle.result()
    assert final.status == Status.RESOLVED and final.report_keys
    assert all(s.sha256 for s in final.snapshots), "the report and the manifest carry the digests"
