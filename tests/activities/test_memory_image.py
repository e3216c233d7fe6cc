"""The memory image an instance stored, as the worker takes it in: read back by version a chunk at a time, hashed,
put under the evidence retention when the bucket's default is shorter, recorded with who wrote it; and verified by
`irflow verify` like every exhibit, whatever its size."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

import boto3

from activities import memory_image
from activities.evidence import head_or_none
from activities.memory_image import printed_digest, record_image, stream_sha256
from irflow import custody
from irflow.custody import Verifier
from irflow.models.settings import get_settings
from tests.activities.evidence_support import RETENTION, assert_locked_evidence

KEY = "incidents/inc-evidence-0001/memory/AROAEXAMPLEROLEID0001:i-0123456789abcdef0/memory.lime"


def _put(workload, body: bytes, **extra) -> dict:
    s3 = boto3.client("s3", region_name=workload.region)
    s3.put_object(Bucket=workload.evidence_bucket, Key=KEY, Body=body, **extra)
    return head_or_none(s3, workload.evidence_bucket, KEY)


def test_the_printed_digest_is_read_from_the_commands_output():
    digest = hashlib.sha256(b"x").hexdigest()
    assert printed_digest(f"avml ok\n{digest}  /tmp/irflow-memory.lime\nupload: done\n") == digest
    assert printed_digest("avml is not installed on this instance") is None
    assert printed_digest(f"{digest}  /etc/passwd\n") is None, "only the image's line counts"


def test_the_image_is_hashed_a_chunk_at_a_time(workload, monkeypatch):
    body = os.urandom(5 * 1024 * 1024 + 3)
    monkeypatch.setattr(custody, "READ_CHUNK", 1024 * 1024)  # the one streaming hasher's chunk
    head = _put(workload, body)
    reads: list[int] = []
    monkeypatch.setattr(memory_image, "heartbeat", lambda progress: reads.append(progress))
    s3 = boto3.client("s3", region_name=workload.region)
    assert stream_sha256(s3, workload.evidence_bucket, KEY, head["VersionId"]) == (
        hashlib.sha256(body).hexdigest(),
        len(body),
    )
    assert len(reads) == 6, "one read (and heartbeat) per chunk: the whole image is never held"


def test_the_record_is_locked_for_the_evidence_retention_and_names_who_wrote_it(workload):
    body = b"LiME image" * 1000
    head = _put(workload, body, Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    assert head["ObjectLockRetainUntilDate"] < datetime.now(UTC) + timedelta(days=2), "the bucket's default: 1 day"
    s3 = boto3.client("s3", region_name=workload.region)
    record = record_image(get_settings(), s3, KEY, head, "AROAEXAMPLEROLEID0001:i-0123456789abcdef0 through SSM")
    assert record.kind == "memory-image" and record.collected_by.endswith("through SSM")
    assert record.retain_until >= datetime.now(UTC) + RETENTION - timedelta(days=1)
    assert_locked_evidence(workload, record)
    assert again_unchanged(workload, record)


def again_unchanged(workload, record) -> bool:
    """A second take of the same version changes nothing (a retried activity)."""
    s3 = boto3.client("s3", region_name=workload.region)
    head = head_or_none(s3, workload.evidence_bucket, KEY)
    second = record_image(get_settings(), s3, KEY, head, record.collected_by)
    return (second.version_id, second.sha256, second.lock_mode) == (record.version_id, record.sha256, record.lock_mode)


def test_verify_checks_an_image_by_its_digest_and_who_wrote_it(workload):
    body = b"LiME" * 5000
    head = _put(workload, body, Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    s3, kms = boto3.client("s3", region_name=workload.region), boto3.client("kms", region_name=workload.region)
    record = record_image(get_settings(), s3, KEY, head, "AROAEXAMPLEROLEID0001:i-0123456789abcdef0")
    verifier = Verifier(s3, kms, workload.kms_key_id)
    verifier.read(record)
    assert {c.check: c.status for c in verifier.checks} == {
        "content": "pass",
        "lock": "pass",
        "retention": "pass",
        "kms": "pass",
        "custody": "pass",
    }
    assert "written by AROAEXAMPLEROLEID0001:i-0123456789abcdef0" in verifier.checks[-1].detail

    tampered = record.model_copy(update={"sha256": "0" * 64})
    verifier = Verifier(s3, kms, workload.kms_key_id)
    verifier.read(tampered)
    assert [c.check for c in verifier.checks if c.status == "fail"] == ["content", "custody"]
