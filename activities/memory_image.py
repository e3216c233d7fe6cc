"""The memory image an instance uploaded: found where the capture document put it, streamed, hashed, locked, recorded.

The instance writes the image (its quarantine profile may write only below `incidents/*/memory/<its session>/`);
the worker then reads that exact version back in bounded memory, computes its SHA-256, compares it with the digest
the instance printed (and put in the object's metadata), makes sure the version is under the evidence retention,
and returns its record for the manifest. The worker never trusts the instance's digest alone: the one recorded is
the worker's own, over the bytes stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from activities.aws import heartbeat, typed_aws_errors
from activities.evidence import custody_metadata
from irflow.custody import custody_fields, hash_stream
from irflow.models.evidence import EvidenceObject

IMAGE_NAME = "memory.lime"
IMAGE_KIND = "memory-image"
IMAGE_READ_ACTIONS = ("s3:GetObject", "s3:PutObjectRetention")
# The capture document runs `sha256sum /tmp/irflow-memory.lime`: its line in the command's output.
_PRINTED_DIGEST = re.compile(r"^([0-9a-f]{64})\s+\S*irflow-memory\.lime\s*$", re.MULTILINE)


def printed_digest(stdout: str) -> str | None:
    """The SHA-256 the instance printed for its image, if its output holds one."""
    found = _PRINTED_DIGEST.search(stdout or "")
    return found.group(1) if found else None


def stream_sha256(s3, bucket: str, key: str, version_id: str) -> tuple[str, int]:
    """SHA-256 and size of one object version, read a chunk at a time (irflow.custody.hash_stream: memory use stays
    at one chunk whatever the image's size), heartbeating after each."""
    body = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"]
    _, sha256, size = hash_stream(body, on_chunk=lambda done: heartbeat(f"hashed {done} bytes of {key}"))
    return sha256, size


def _retain(s3, bucket: str, key: str, head: dict, mode: str, days: int) -> tuple[str | None, datetime | None]:
    """Keep the version under at least the evidence retention (the bucket's default may be shorter, or absent).
    `head` is the version's own head: its lock mode and retain-until date as S3 holds them."""
    wanted = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)
    held_mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    if until is not None and until >= wanted - timedelta(days=1) and held_mode in (mode, "COMPLIANCE"):
        return held_mode, until  # as asked (the day's slack: set when the object arrived), or stricter
    s3.put_object_retention(
        Bucket=bucket,
        Key=key,
        VersionId=head.get("VersionId"),
        Retention={"Mode": mode, "RetainUntilDate": wanted},
    )
    return mode, wanted


def record_image(settings, s3, key: str, head: dict, collected_by: str) -> EvidenceObject:
    """Hash the image version found, lock it, and return its manifest record (custody: the instance wrote it,
    this activity attempt found and hashed it)."""
    bucket, version_id = settings.evidence_bucket, head.get("VersionId")
    with typed_aws_errors(f"hash the memory image s3://{bucket}/{key}"):
        sha256, size = stream_sha256(s3, bucket, key, version_id)
        mode, until = _retain(s3, bucket, key, head, settings.evidence_lock_mode, settings.evidence_retention_days)
    custody = custody_fields(custody_metadata(datetime.now(UTC)))  # who found and hashed it: this attempt
    return EvidenceObject(
        kind=IMAGE_KIND,
        bucket=bucket,
        key=key,
        sha256=sha256,
        size=size,
        version_id=version_id,
        retain_until=until,
        lock_mode=mode,
        kms_key_id=head.get("SSEKMSKeyId"),
        **{**custody, "collected_at": head.get("LastModified")},  # collected when the instance stored it
        collected_by=collected_by,
    )
