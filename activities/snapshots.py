"""Evidence snapshots after they are taken: a digest of each, and a copy in the forensic account.

`digest_snapshot` waits for the snapshot to complete, then reads its blocks through the EBS direct APIs and
records a SHA-256 on its evidence: the digest of the concatenated data of the snapshot's written blocks, in
ascending block-index order (`DIGEST_ALGORITHM`). Unwritten blocks (sparse, read as zeros) are not part of it.
Blocks are streamed, one chunk in memory at a time, each checked against the checksum EBS returns with it.

`copy_snapshot_to_forensic_account` (with IRFLOW_FORENSIC_ACCOUNT_ID) shares the snapshot with the forensic
account, copies it there as the forensic role under that account's KMS key, waits for the copy, digests it and
compares; the original is deleted only when IRFLOW_FORENSIC_KEEP_ORIGINAL=false, the copy is completed and its
digest matches. Both are idempotent: a retry finds the digest already recorded, or the copy by its tag.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.aws import (
    EVIDENCE_INTEGRITY,
    NOT_CONFIGURED,
    NOT_FOUND,
    aws_activity,
    client,
    heartbeat,
    not_found,
    typed_aws_errors,
)
from activities.evidence import oldest_snapshot
from irflow.models.ec2 import Ec2Target
from irflow.models.evidence import SnapshotEvidence
from irflow.models.settings import get_settings
from irflow.models.tagging import INCIDENT_TAG

DIGEST_ALGORITHM = "sha256-ebs-written-blocks"
SOURCE_SNAPSHOT_TAG = "irflow:source-snapshot-id"
SOURCE_ACCOUNT_TAG = "irflow:source-account-id"
_CHUNK = 64 * 1024
_PAGE = 1000  # block tokens per ListSnapshotBlocks page (AWS allows 100-10000)
_FIRST_POLL_SECONDS, _MAX_POLL_SECONDS = 2.0, 30.0  # well inside SLOW's 90-second heartbeat timeout


class SnapshotStep(BaseModel):
    """One evidence snapshot of an EC2 incident's target (whose account and region the snapshot is in)."""

    target: Ec2Target
    snapshot: SnapshotEvidence


class Digest(BaseModel):
    sha256: str
    block_count: int
    block_size: int | None
    volume_size_gib: int | None


def _pause(seconds: float) -> None:
    """Between polls of a snapshot's state (tests replace it: they never wait on a clock)."""
    time.sleep(seconds)


def wait_until_completed(ec2: Any, snapshot_id: str) -> dict:
    """The snapshot once it is `completed`, polled with backoff and a heartbeat each time; `error` is final."""
    delay = _FIRST_POLL_SECONDS
    while True:
        with typed_aws_errors(f"describe snapshot {snapshot_id}"):
            found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        if not found:
            raise not_found(f"snapshot {snapshot_id} not found")
        snapshot = found[0]
        state = snapshot.get("State", "")
        heartbeat(snapshot_id, state, snapshot.get("Progress", ""))
        if state == "completed":
            return snapshot
        if state == "error":
            raise ApplicationError(
                f"snapshot {snapshot_id} failed: {snapshot.get('StateMessage', '')}",
                type=EVIDENCE_INTEGRITY,
                non_retryable=True,
            )
        _pause(delay)
        delay = min(delay * 2, _MAX_POLL_SECONDS)


def snapshot_digest(ebs: Any, snapshot_id: str) -> Digest:
    """SHA-256 over the snapshot's written blocks in ascending block-index order, streamed in bounded memory."""
    digest, count, last = hashlib.sha256(), 0, -1
    block_size = volume_size = None
    request: dict[str, Any] = {"SnapshotId": snapshot_id, "MaxResults": _PAGE}
    while True:
        with typed_aws_errors(f"list blocks of {snapshot_id}"):
            page = ebs.list_snapshot_blocks(**request)
        block_size, volume_size = page.get("BlockSize", block_size), page.get("VolumeSize", volume_size)
        for block in page.get("Blocks", []):
            index = block["BlockIndex"]
            if index <= last:
                raise ApplicationError(f"{snapshot_id}: block {index} listed after {last}", type=EVIDENCE_INTEGRITY)
            _digest_block(ebs, snapshot_id, block, digest)
            count, last = count + 1, index
            if count % 64 == 0:
                heartbeat(snapshot_id, count)
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    return Digest(sha256=digest.hexdigest(), block_count=count, block_size=block_size, volume_size_gib=volume_size)


def _digest_block(ebs: Any, snapshot_id: str, block: dict, digest: Any) -> None:
    index = block["BlockIndex"]
    with typed_aws_errors(f"read block {index} of {snapshot_id}"):
        answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=block["BlockToken"])
    body, own, length = answer["BlockData"], hashlib.sha256(), 0
    try:
        for chunk in iter(lambda: body.read(_CHUNK), b""):
            digest.update(chunk)
            own.update(chunk)
            length += len(chunk)
    finally:
        body.close()
    expected_length = answer.get("DataLength")
    if expected_length is not None and expected_length != length:
        raise ApplicationError(
            f"{snapshot_id} block {index}: {length} bytes, {expected_length} sent", type=EVIDENCE_INTEGRITY
        )
    checksum = answer.get("Checksum")
    if answer.get("ChecksumAlgorithm") == "SHA256" and checksum and base64.b64encode(own.digest()).decode() != checksum:
        raise ApplicationError(
            f"{snapshot_id} block {index}: data does not match its checksum", type=EVIDENCE_INTEGRITY
        )


@aws_activity("ec2:DescribeSnapshots", "ebs:ListSnapshotBlocks", "ebs:GetSnapshotBlock")
def digest_snapshot(step: SnapshotStep) -> SnapshotEvidence:
    """The snapshot's evidence with its digest (unchanged when IRFLOW_SNAPSHOT_DIGEST=false or already digested)."""
    snapshot, target = step.snapshot, step.target
    if not get_settings().snapshot_digest or snapshot.sha256:
        return snapshot
    described = wait_until_completed(client("ec2", target.region, target.account_id), snapshot.snapshot_id)
    digest = snapshot_digest(client("ebs", target.region, target.account_id), snapshot.snapshot_id)
    return snapshot.model_copy(
        update={
            "state": described.get("State", "completed"),
            "sha256": digest.sha256,
            "block_count": digest.block_count,
            "block_size": digest.block_size,
            "volume_size_gib": digest.volume_size_gib,
            "digest_algorithm": DIGEST_ALGORITHM,
            "digested_at": datetime.now(UTC),
        }
    )


def forensic_client(service: str, region: str) -> Any:
    """A client in the forensic account, through activities.aws's role assumption (its member role, or
    IRFLOW_FORENSIC_ROLE_NAME when that names another role)."""
    settings = get_settings()
    return client(service, region, settings.forensic_account_id, role_name=settings.forensic_role_name or None)


def find_copy(ec2: Any, snapshot_id: str) -> str | None:
    """The forensic account's copy of `snapshot_id`, found by its tag (the oldest, should a retry have made two)."""
    with typed_aws_errors(f"find the forensic copy of {snapshot_id}"):
        found = ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{SOURCE_SNAPSHOT_TAG}", "Values": [snapshot_id]}]
        )["Snapshots"]
    found = [s for s in found if s.get("State") != "error"]
    return oldest_snapshot(found)["SnapshotId"] if found else None


@contextmanager
def _gone_is_done() -> Iterator[None]:
    """A snapshot already gone is no error where it was to go anyway (a retry after it was deleted)."""
    try:
        yield
    except ApplicationError as error:
        if error.type != NOT_FOUND:
            raise


def _share(ec2: Any, snapshot_id: str, account_id: str, operation: str) -> None:
    tolerated = _gone_is_done() if operation == "remove" else nullcontext()
    with tolerated, typed_aws_errors(f"{operation} {snapshot_id} createVolumePermission for {account_id}"):
        ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id,
            Attribute="createVolumePermission",
            OperationType=operation,
            UserIds=[account_id],
        )


def _start_copy(step: SnapshotStep, forensic_ec2: Any, kms_key_id: str) -> str:
    target, snapshot = step.target, step.snapshot
    tags = {
        INCIDENT_TAG: target.incident_id,
        SOURCE_SNAPSHOT_TAG: snapshot.snapshot_id,
        SOURCE_ACCOUNT_TAG: target.account_id,
        "irflow:instance-id": target.instance_id,
        "irflow:volume-id": snapshot.volume_id,
        "Name": f"irflow-{target.incident_id}-{snapshot.snapshot_id}",
    }
    with typed_aws_errors(f"copy {snapshot.snapshot_id} into the forensic account"):
        return forensic_ec2.copy_snapshot(
            SourceSnapshotId=snapshot.snapshot_id,
            SourceRegion=target.region,
            Encrypted=True,
            KmsKeyId=kms_key_id,
            Description=f"irflow forensic copy of {snapshot.snapshot_id} ({target.account_id}) {target.incident_id}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["SnapshotId"]


def _delete_original(ec2: Any, snapshot_id: str) -> None:
    with _gone_is_done(), typed_aws_errors(f"delete the original {snapshot_id}"):
        ec2.delete_snapshot(SnapshotId=snapshot_id)


@aws_activity(
    "ec2:DescribeSnapshots",
    "ec2:ModifySnapshotAttribute",
    "ec2:CopySnapshot",
    "ec2:CreateTags",
    "ec2:DeleteSnapshot",
    "ebs:ListSnapshotBlocks",
    "ebs:GetSnapshotBlock",
)
def copy_snapshot_to_forensic_account(step: SnapshotStep) -> SnapshotEvidence:
    """The snapshot's evidence with its forensic copy recorded (unchanged without IRFLOW_FORENSIC_ACCOUNT_ID)."""
    settings, target, snapshot = get_settings(), step.target, step.snapshot
    if not settings.forensic_account_id:
        return snapshot
    if not settings.forensic_kms_key_id:
        raise ApplicationError(
            "IRFLOW_FORENSIC_KMS_KEY_ID is not set: the forensic copy is re-encrypted under the forensic account's key",
            type=NOT_CONFIGURED,
            non_retryable=True,
        )
    source_ec2 = client("ec2", target.region, target.account_id)
    forensic_ec2 = forensic_client("ec2", target.region)
    copy_id = find_copy(forensic_ec2, snapshot.snapshot_id)
    if copy_id is None:
        wait_until_completed(source_ec2, snapshot.snapshot_id)
        # An encrypted snapshot's KMS key must be shared with the forensic account too (docs/playbooks.md).
        _share(source_ec2, snapshot.snapshot_id, settings.forensic_account_id, "add")
        copy_id = _start_copy(step, forensic_ec2, settings.forensic_kms_key_id)
    copy = wait_until_completed(forensic_ec2, copy_id)
    copy_sha256, matches = None, None
    if settings.snapshot_digest and snapshot.sha256:
        copy_digest = snapshot_digest(forensic_client("ebs", target.region), copy_id)
        copy_sha256 = copy_digest.sha256
        matches = copy_sha256 == snapshot.sha256 and copy_digest.block_count == snapshot.block_count
    deleted = bool(matches) and not settings.forensic_keep_original
    if deleted:
        _delete_original(source_ec2, snapshot.snapshot_id)
    else:
        _share(source_ec2, snapshot.snapshot_id, settings.forensic_account_id, "remove")  # the copy is its own now
    return snapshot.model_copy(
        update={
            "copy_snapshot_id": copy_id,
            "copy_account_id": settings.forensic_account_id,
            "copy_region": target.region,
            "copy_kms_key_id": copy.get("KmsKeyId") or settings.forensic_kms_key_id,
            "copy_state": copy.get("State"),
            "copy_sha256": copy_sha256,
            "copy_digest_matches": matches,
            "original_deleted": deleted,
        }
    )
