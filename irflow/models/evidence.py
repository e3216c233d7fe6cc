"""Evidence records: each object in the evidence bucket, each snapshot, and what became of memory."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class EvidenceObject(BaseModel):
    """An object stored in the evidence bucket under Object Lock."""

    kind: str
    bucket: str
    key: str
    sha256: str
    size: int
    version_id: str | None = None
    retain_until: datetime | None = None
    lock_mode: str | None = None
    kms_key_id: str | None = None
    # Chain of custody (docs/playbooks.md): who wrote the object, when, from which activity attempt of which run,
    # kept in the object's own metadata too, so a retry that finds the object returns the same record.
    collected_at: datetime | None = None
    activity_type: str | None = None
    activity_attempt: int | None = None
    workflow_id: str | None = None
    workflow_run_id: str | None = None
    worker_identity: str | None = None
    principal_arn: str | None = None
    collected_by: str | None = Field(
        default=None,
        description="who wrote the object when irflow did not (a memory image: the instance's role session, through "
        "an SSM command); the other custody fields then say which activity attempt found and hashed it",
    )
    signature: EvidenceObject | None = Field(default=None, description="a manifest's detached KMS signature object")


class SnapshotEvidence(BaseModel):
    """A snapshot taken as evidence; with its digest and its copy in the forensic account when irflow made them.

    The digest (`digest_algorithm` "sha256-ebs-written-blocks") is the SHA-256 over the concatenated data of the
    snapshot's written blocks, read through the EBS direct APIs (ListSnapshotBlocks, GetSnapshotBlock) in ascending
    block-index order. Blocks never written (sparse, read as zeros) are not part of it: it fixes the snapshot's
    stored content, `block_count` blocks of `block_size` bytes, not the image of the whole volume."""

    snapshot_id: str
    volume_id: str
    state: str
    started_at: datetime | None = None
    sha256: str | None = None
    block_count: int | None = None
    block_size: int | None = None
    volume_size_gib: int | None = None
    digest_algorithm: str | None = None
    digested_at: datetime | None = None
    # The copy in the forensic account (IRFLOW_FORENSIC_ACCOUNT_ID), re-encrypted under that account's key.
    copy_snapshot_id: str | None = None
    copy_account_id: str | None = None
    copy_region: str | None = None
    copy_kms_key_id: str | None = None
    copy_state: str | None = None
    copy_sha256: str | None = None
    copy_digest_matches: bool | None = None
    original_deleted: bool = False


class MemoryCapture(StrEnum):
    """How an incident captures memory (docs/playbooks.md, "Memory"), fixed in its policy."""

    THROUGH_ENDPOINTS = "through-endpoints"  # after isolation, over the forensic egress (IRFLOW_FORENSIC_EGRESS)
    BEFORE_ISOLATION = "before-isolation"  # first, isolating at the policy's memory_deadline regardless
    SKIP = "skip"  # no forensic egress and IRFLOW_MEMORY_WITHOUT_EGRESS=skip: nothing is sent
    OFF = "off"  # IRFLOW_CAPTURE_MEMORY=false


class MemoryCaptureResult(BaseModel):
    """What became of the instance's memory: how it was taken (mode, tool, SSM command), the image and its
    SHA-256 (computed by the worker from the stored object; `agent_sha256` is what the instance printed), or why
    there is none."""

    mode: MemoryCapture = MemoryCapture.THROUGH_ENDPOINTS
    tool: str = "avml"
    command_id: str | None = None
    status: str
    detail: str = ""
    document: str = ""
    evidence: EvidenceObject | None = Field(default=None, description="the acquisition record (JSON)")
    image: EvidenceObject | None = None
    agent_sha256: str | None = None
    reason: str = Field(default="", description="why no image was captured, when none was")
    isolated_at_deadline: bool = False

    @property
    def captured(self) -> bool:
        return self.image is not None
