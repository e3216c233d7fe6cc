"""Snapshot digests through the EBS direct APIs, and the copy in the forensic account (a second moto account)."""

from __future__ import annotations

import base64
import hashlib

import boto3
import pytest
from moto.ebs.models import ebs_backends
from moto.ec2.models import ec2_backends
from temporalio.exceptions import ApplicationError

from activities import snapshots as snapshots_module
from activities.evidence import snapshot_volumes
from activities.snapshots import (
    DIGEST_ALGORITHM,
    SOURCE_SNAPSHOT_TAG,
    SnapshotStep,
    copy_snapshot_to_forensic_account,
    digest_snapshot,
)
from irflow.models.settings import get_settings
from tests.activities.evidence_support import (
    INCIDENT_ID,
    step_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    target_fixture,  # noqa: F401
)
from tests.support import member_session

FORENSIC_ACCOUNT = "222233334444"


def independent_digest(ebs, snapshot_id: str) -> tuple[str, int]:
    """The digest as a test computes it on its own: every listed block, by index, through boto3's ebs client."""
    digest, indices, request = hashlib.sha256(), [], {"SnapshotId": snapshot_id}
    while True:
        page = ebs.list_snapshot_blocks(**request)
        indices += [(b["BlockIndex"], b["BlockToken"]) for b in page["Blocks"]]
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    for index, token in sorted(indices):
        digest.update(
            ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)["BlockData"].read()
        )
    return digest.hexdigest(), len(indices)


@pytest.fixture
def taken(step):
    return snapshot_volumes(step)


@pytest.fixture
def forensic(workload, monkeypatch):
    """A forensic account with its own KMS key, configured as irflow's."""
    session = member_session(FORENSIC_ACCOUNT, workload.region)
    key = session.client("kms").create_key(Description="forensic evidence")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("IRFLOW_FORENSIC_ACCOUNT_ID", FORENSIC_ACCOUNT)
    monkeypatch.setenv("IRFLOW_FORENSIC_KMS_KEY_ID", key)
    get_settings.cache_clear()
    return session, key


def test_each_digest_equals_one_computed_independently_from_the_same_blocks(workload, target, taken):
    ebs = boto3.client("ebs", region_name=workload.region)
    assert len(taken) == 2
    for snapshot in taken:
        digested = digest_snapshot(SnapshotStep(target=target, snapshot=snapshot))
        expected, blocks = independent_digest(ebs, snapshot.snapshot_id)
        assert (digested.sha256, digested.block_count) == (expected, blocks)
        assert blocks >= 2 and digested.digest_algorithm == DIGEST_ALGORITHM
        assert digested.block_size == 512 and digested.state == "completed" and digested.digested_at
    assert len({digest_snapshot(SnapshotStep(target=target, snapshot=s)).sha256 for s in taken}) == 2


def test_digesting_again_returns_the_recorded_digest(target, taken):
    first = digest_snapshot(SnapshotStep(target=target, snapshot=taken[0]))
    assert digest_snapshot(SnapshotStep(target=target, snapshot=first)) == first


def test_no_digest_when_turned_off(target, taken, monkeypatch):
    monkeypatch.setenv("IRFLOW_SNAPSHOT_DIGEST", "false")
    get_settings.cache_clear()
    assert digest_snapshot(SnapshotStep(target=target, snapshot=taken[0])) == taken[0]


def test_a_pending_snapshot_is_waited_for_with_backoff(workload, target, taken, monkeypatch):
    moto_snapshot = ec2_backends[workload.account_id][workload.region].snapshots[taken[0].snapshot_id]
    moto_snapshot.status = "pending"
    pauses = []

    def pause(seconds):  # AWS finishing the snapshot while irflow waits
        pauses.append(seconds)
        if len(pauses) == 3:
            moto_snapshot.status = "completed"

    monkeypatch.setattr(snapshots_module, "_pause", pause)
    digested = digest_snapshot(SnapshotStep(target=target, snapshot=taken[0]))
    assert pauses == [2.0, 4.0, 8.0] and digested.sha256 and digested.state == "completed"


def test_a_failed_snapshot_is_a_final_failure(workload, target, taken):
    ec2_backends[workload.account_id][workload.region].snapshots[taken[0].snapshot_id].status = "error"
    with pytest.raises(ApplicationError) as failure:
        digest_snapshot(SnapshotStep(target=target, snapshot=taken[0]))
    assert failure.value.non_retryable and failure.value.type == "EvidenceIntegrity"


def test_a_block_that_does_not_match_its_checksum_is_refused(workload, target, taken):
    served = ebs_backends[workload.account_id][workload.region].snapshots[taken[0].snapshot_id]
    block = next(iter(served.blocks.values()))
    block.block_data = bytes(len(block.block_data))  # altered after its checksum was taken
    with pytest.raises(ApplicationError, match="does not match its checksum") as failure:
        digest_snapshot(SnapshotStep(target=target, snapshot=taken[0]))
    assert not failure.value.non_retryable  # a read gone wrong is read again


def test_the_digest_reads_every_page_of_blocks(workload, target, taken, monkeypatch):
    monkeypatch.setattr(snapshots_module, "_PAGE", 1)
    ebs, calls = boto3.client("ebs", region_name=workload.region), []
    original = ebs.list_snapshot_blocks
    served = ebs_backends[workload.account_id][workload.region].snapshots[taken[0].snapshot_id]
    indices = sorted(served.blocks)

    def one_block_a_page(**request):  # moto pages nothing: answer as AWS would with MaxResults=1
        calls.append(request)
        page = original(SnapshotId=request["SnapshotId"])
        at = int(request.get("NextToken", "0"))
        page["Blocks"] = [b for b in page["Blocks"] if b["BlockIndex"] == indices[at]]
        if at + 1 < len(indices):
            page["NextToken"] = str(at + 1)
        return page

    monkeypatch.setattr(ebs, "list_snapshot_blocks", one_block_a_page)
    digest = snapshots_module.snapshot_digest(ebs, taken[0].snapshot_id)
    assert len(calls) == len(indices) == digest.block_count
    assert (
        digest.sha256 == independent_digest(boto3.client("ebs", region_name=workload.region), taken[0].snapshot_id)[0]
    )


def test_without_a_forensic_account_nothing_is_copied(target, taken):
    assert copy_snapshot_to_forensic_account(SnapshotStep(target=target, snapshot=taken[0])) == taken[0]


def test_a_forensic_account_without_its_key_is_refused(target, taken, monkeypatch):
    monkeypatch.setenv("IRFLOW_FORENSIC_ACCOUNT_ID", FORENSIC_ACCOUNT)
    get_settings.cache_clear()
    with pytest.raises(ApplicationError, match="IRFLOW_FORENSIC_KMS_KEY_ID") as failure:
        copy_snapshot_to_forensic_account(SnapshotStep(target=target, snapshot=taken[0]))
    assert failure.value.non_retryable


def test_each_snapshot_is_copied_once_under_the_forensic_key_with_a_matching_digest(workload, target, taken, forensic):
    session, key = forensic
    source = boto3.client("ec2", region_name=workload.region)
    for snapshot in taken:
        step = SnapshotStep(target=target, snapshot=digest_snapshot(SnapshotStep(target=target, snapshot=snapshot)))
        copied = copy_snapshot_to_forensic_account(step)
        assert copy_snapshot_to_forensic_account(step) == copied, "a retry finds the copy by its tag"
        assert copied.copy_account_id == FORENSIC_ACCOUNT and copied.copy_kms_key_id == key
        assert copied.copy_state == "completed" and copied.copy_digest_matches is True
        assert (
            copied.copy_sha256 == copied.sha256 == independent_digest(session.client("ebs"), copied.copy_snapshot_id)[0]
        )
        assert copied.original_deleted is False
        [copy] = session.client("ec2").describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{SOURCE_SNAPSHOT_TAG}", "Values": [snapshot.snapshot_id]}]
        )["Snapshots"]
        tags = {t["Key"]: t["Value"] for t in copy["Tags"]}
        assert copy["SnapshotId"] == copied.copy_snapshot_id and copy["Encrypted"] and copy["KmsKeyId"] == key
        assert tags["irflow:incident-id"] == INCIDENT_ID and tags["irflow:source-account-id"] == workload.account_id
        # The original is kept, and no longer shared: the forensic account holds its own copy.
        permissions = source.describe_snapshot_attribute(
            SnapshotId=snapshot.snapshot_id, Attribute="createVolumePermission"
        )["CreateVolumePermissions"]
        assert permissions == []


def test_the_original_is_deleted_only_after_a_matching_copy(workload, target, taken, forensic, monkeypatch):
    monkeypatch.setenv("IRFLOW_FORENSIC_KEEP_ORIGINAL", "false")
    get_settings.cache_clear()
    source = boto3.client("ec2", region_name=workload.region)
    undigested = copy_snapshot_to_forensic_account(SnapshotStep(target=target, snapshot=taken[1]))
    assert undigested.copy_digest_matches is None and undigested.original_deleted is False, "nothing to compare"
    assert source.describe_snapshots(SnapshotIds=[taken[1].snapshot_id])["Snapshots"]

    step = SnapshotStep(target=target, snapshot=digest_snapshot(SnapshotStep(target=target, snapshot=taken[0])))
    copied = copy_snapshot_to_forensic_account(step)
    assert copied.copy_digest_matches is True and copied.original_deleted is True
    assert [s["SnapshotId"] for s in source.describe_snapshots(OwnerIds=["self"])["Snapshots"]].count(
        taken[0].snapshot_id
    ) == 0
    assert copy_snapshot_to_forensic_account(step) == copied, "a retry after the deletion changes nothing"


def test_a_copy_whose_digest_differs_keeps_the_original(workload, target, taken, forensic, monkeypatch):
    monkeypatch.setenv("IRFLOW_FORENSIC_KEEP_ORIGINAL", "false")
    get_settings.cache_clear()
    digested = digest_snapshot(SnapshotStep(target=target, snapshot=taken[0]))
    wrong = digested.model_copy(update={"sha256": hashlib.sha256(b"something else").hexdigest()})
    copied = copy_snapshot_to_forensic_account(SnapshotStep(target=target, snapshot=wrong))
    assert copied.copy_digest_matches is False and copied.original_deleted is False
    source = boto3.client("ec2", region_name=workload.region)
    assert source.describe_snapshots(SnapshotIds=[taken[0].snapshot_id])["Snapshots"]


def test_the_bridge_serves_checksums_as_aws_does(workload, taken):
    ebs = boto3.client("ebs", region_name=workload.region)
    block = ebs.list_snapshot_blocks(SnapshotId=taken[0].snapshot_id)["Blocks"][0]
    answer = ebs.get_snapshot_block(
        SnapshotId=taken[0].snapshot_id, BlockIndex=block["BlockIndex"], BlockToken=block["BlockToken"]
    )
    data = answer["BlockData"].read()
    assert answer["ChecksumAlgorithm"] == "SHA256"
    assert answer["Checksum"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
