"""The EC2 playbook with a forensic account (issue 13, parts 5 and 6), through a whole incident: every snapshot is
digested from its blocks, copied into the forensic account (a second moto account) under that account's KMS
key, and the copy's digest matches."""

from __future__ import annotations

import boto3

from irflow.models.incident import Status
from irflow.models.settings import get_settings
from tests.activities.test_snapshots import FORENSIC_ACCOUNT, independent_digest
from tests.support import member_session, open_incident, read_evidence, running_worker, wait_for


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
