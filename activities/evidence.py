"""Evidence capture: volume snapshots, instance metadata, console output, the raw finding, the manifest.

Every object goes to the evidence bucket under `incidents/<incident-id>/`, KMS-encrypted, under
Object Lock retention, with its SHA-256 in the object's metadata and verified against the checksum S3
computed on arrival. Evidence is first-capture-wins: a retried activity finds the object already
there and returns it instead of capturing again.

Chain of custody (irflow/custody.py): each object's record and metadata say which activity attempt of which
workflow run wrote it, on which worker, as which AWS principal, and when; the manifest chains the records and
is signed with IRFLOW_MANIFEST_SIGNING_KEY_ID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.aws import (
    EVIDENCE_INTEGRITY,
    INVALID_REQUEST,
    NOT_CONFIGURED,
    aws_activity,
    client,
    error_code,
    heartbeat,
    own_identity,
    typed_aws_errors,
)
from activities.ec2_context import describe_instance
from irflow.custody import (
    SIGNATURE_KIND,
    SIGNATURE_SUFFIX,
    build_manifest,
    choose_algorithm,
    custody_fields,
    object_entry,
    sign_statement,
    signing_statement,
)
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.evidence import EvidenceObject, SnapshotEvidence
from irflow.models.finding import canonical_json, unpack_raw
from irflow.models.identifiers import INCIDENT_ID, key_refusal, refusal, region_of_arn
from irflow.models.incident import ManifestInput, RawFindingInput
from irflow.models.settings import get_settings
from irflow.models.tagging import INCIDENT_TAG

EVIDENCE_WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectRetention",
    "s3:GetObject",
    "s3:ListBucket",
    "kms:GenerateDataKey",
)


_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9._-]+")
_ABSENT = ("404", "NoSuchKey", "NotFound")  # what S3 answers for a key it does not hold


def _refuse(reason: str | None) -> None:
    """A non-retryable InvalidRequest saying `reason`, when there is one (irflow.models.identifiers's refusals)."""
    if reason:
        raise ApplicationError(f"refused: {reason}", type=INVALID_REQUEST, non_retryable=True)


def checked_identifier(kind: str, value: str) -> str:
    """`value` when it is a valid `kind` (irflow.models.identifiers), else a non-retryable InvalidRequest: a value
    from a finding that would reach a key, a policy or a command is refused before any call is made."""
    _refuse(refusal(kind, value))
    return value


def evidence_prefix(incident_id: str) -> str:
    return f"incidents/{incident_id}/"


def evidence_key(incident_id: str, relative_key: str) -> str:
    """`incidents/<incident id>/<relative key>`, every part checked: no step of the key can leave the incident's
    prefix ("..", an empty step, a character outside the identifiers'), whatever a finding named."""
    checked_identifier(INCIDENT_ID, incident_id)
    _refuse(key_refusal(relative_key))
    return evidence_prefix(incident_id) + relative_key


def head_or_none(s3: Any, bucket: str, key: str, with_body: bool = False) -> dict | None:
    """The object's head (with `with_body`, get_object's answer: the head and its Body), or None when the bucket
    holds no such key; any other error is raised."""
    try:
        return (s3.get_object if with_body else s3.head_object)(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in _ABSENT:
            return None
        raise


def oldest_snapshot(snapshots: list[dict]) -> dict:
    """The first snapshot taken (the evidence, should a retry have made two), ties broken by id."""
    earliest = datetime.min.replace(tzinfo=UTC)  # StartTime is aware; a snapshot without one sorts first
    return min(snapshots, key=lambda s: (s.get("StartTime") or earliest, s["SnapshotId"]))


def to_json_bytes(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode()


def require_evidence_bucket():
    settings = get_settings()
    if not settings.evidence_bucket:
        raise ApplicationError(
            "IRFLOW_EVIDENCE_BUCKET is not set: irflow will not capture evidence it cannot lock",
            type=NOT_CONFIGURED,
            non_retryable=True,
        )
    return settings, client("s3", settings.evidence_region or None)


WORKER_IDENTITY = f"{os.getpid()}@{socket.gethostname()}"  # the Temporal SDK's own default identity


def worker_principal_arn() -> str:
    """The ARN of the worker's own credentials (activities.aws.own_identity, asked once per process)."""
    with typed_aws_errors("identify the worker's principal"):
        return own_identity()["Arn"]


def custody_metadata(collected_at: datetime) -> dict[str, str]:
    """Who writes the object, as S3 user metadata: the activity attempt and run (when inside one), the worker's
    identity and principal, and the time."""
    metadata = {
        "collected-at": collected_at.isoformat(),
        "worker-identity": WORKER_IDENTITY,
        "principal-arn": worker_principal_arn(),
    }
    if activity.in_activity():
        info = activity.info()
        metadata.update(
            {
                "activity-type": info.activity_type,
                "activity-attempt": str(info.attempt),
                "workflow-id": info.workflow_id or "",
                "workflow-run-id": info.workflow_run_id or "",
            }
        )
    return {name: value for name, value in metadata.items() if value}


def _record_from_head(bucket: str, key: str, kind: str, head: dict) -> EvidenceObject:
    """The record of an object already stored, custody included, from its own metadata (a retry returns the
    record the first capture made)."""
    metadata = head.get("Metadata", {})
    return EvidenceObject(
        kind=kind,
        bucket=bucket,
        key=key,
        sha256=metadata.get("sha256", ""),
        size=head["ContentLength"],
        version_id=head.get("VersionId"),
        retain_until=head.get("ObjectLockRetainUntilDate"),
        lock_mode=head.get("ObjectLockMode"),
        kms_key_id=head.get("SSEKMSKeyId"),
        **custody_fields(metadata),
    )


def store_evidence(
    incident_id: str,
    relative_key: str,
    body: bytes,
    kind: str,
    content_type: str = "application/json",
    first_capture_wins: bool = True,
) -> EvidenceObject:
    """Put one evidence object (idempotently) and return its record."""
    key = evidence_key(incident_id, relative_key)
    settings, s3 = require_evidence_bucket()
    bucket = settings.evidence_bucket
    digest = hashlib.sha256(body).hexdigest()
    with typed_aws_errors(f"store evidence s3://{bucket}/{key}"):
        head = head_or_none(s3, bucket, key)
        if head is not None and (first_capture_wins or head.get("Metadata", {}).get("sha256") == digest):
            return _record_from_head(bucket, key, kind, head)
        collected_at = datetime.now(UTC)
        custody = custody_metadata(collected_at)
        retain_until = (collected_at + timedelta(days=settings.evidence_retention_days)).replace(microsecond=0)
        encryption: dict[str, str] = {"ServerSideEncryption": "aws:kms"}
        if settings.evidence_kms_key_id:
            encryption["SSEKMSKeyId"] = settings.evidence_kms_key_id
        put = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            Metadata={"sha256": digest, "incident-id": incident_id, "kind": kind, **custody},
            ObjectLockMode=settings.evidence_lock_mode,
            ObjectLockRetainUntilDate=retain_until,
            **encryption,
        )
    stored_checksum = put.get("ChecksumSHA256")
    if stored_checksum and base64.b64decode(stored_checksum).hex() != digest:
        # S3 computed a different hash from what we sent: the bytes were altered in flight. Retry.
        raise ApplicationError(f"checksum mismatch storing {key}", type=EVIDENCE_INTEGRITY)
    return EvidenceObject(
        kind=kind,
        bucket=bucket,
        key=key,
        sha256=digest,
        size=len(body),
        version_id=put.get("VersionId"),
        retain_until=retain_until,
        lock_mode=settings.evidence_lock_mode,
        kms_key_id=put.get("SSEKMSKeyId") or settings.evidence_kms_key_id or None,
        **custody_fields(custody),
    )


@aws_activity(*EVIDENCE_WRITE_ACTIONS)
def store_raw_finding(request: RawFindingInput) -> EvidenceObject:
    """The finding exactly as it arrived: the first exhibit of every incident (one per distinct version)."""
    raw = request.raw if request.raw is not None else unpack_raw(request.raw_packed or "")
    digest = hashlib.sha256(canonical_json(raw)).hexdigest()
    if request.raw_sha256 and digest != request.raw_sha256:
        raise ApplicationError(
            f"raw finding {request.finding_id} does not hash to the SHA-256 recorded at intake",
            type=EVIDENCE_INTEGRITY,
            non_retryable=True,
        )
    name = _UNSAFE_KEY.sub("_", request.finding_id)[-120:]
    return store_evidence(request.incident_id, f"findings/{name}-{digest[:12]}.json", to_json_bytes(raw), "finding")


@aws_activity("ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags")
def snapshot_volumes(step: Ec2StepInput) -> list[SnapshotEvidence]:
    """One snapshot per attached volume, tagged with the incident; found again by tag on retry."""
    ec2 = client("ec2", step.target.region, step.target.account_id)
    snapshots = []
    for volume in step.prior.volumes:
        heartbeat(volume.volume_id)
        with typed_aws_errors(f"snapshot {volume.volume_id}"):
            existing = ec2.describe_snapshots(
                OwnerIds=["self"],
                Filters=[
                    {"Name": f"tag:{INCIDENT_TAG}", "Values": [step.target.incident_id]},
                    {"Name": "volume-id", "Values": [volume.volume_id]},
                ],
            )["Snapshots"]
            if existing:
                snap = oldest_snapshot(existing)
            else:
                snap = ec2.create_snapshot(
                    VolumeId=volume.volume_id,
                    Description=f"irflow evidence {step.target.incident_id} {step.target.instance_id} "
                    f"{volume.device_name}",
                    TagSpecifications=[
                        {
                            "ResourceType": "snapshot",
                            "Tags": [
                                {"Key": INCIDENT_TAG, "Value": step.target.incident_id},
                                {"Key": "irflow:instance-id", "Value": step.target.instance_id},
                                {"Key": "irflow:device", "Value": volume.device_name},
                                {
                                    "Key": "Name",
                                    "Value": f"irflow-{step.target.incident_id}-{volume.device_name}",
                                },
                            ],
                        }
                    ],
                )
        snapshots.append(
            SnapshotEvidence(
                snapshot_id=snap["SnapshotId"],
                volume_id=volume.volume_id,
                state=snap.get("State", "pending"),
                started_at=snap.get("StartTime"),
            )
        )
    return snapshots


@aws_activity("ec2:DescribeInstances", *EVIDENCE_WRITE_ACTIONS)
def collect_instance_metadata(step: Ec2StepInput) -> EvidenceObject:
    """The instance as EC2 describes it now, beside the prior state irflow captured before containing it."""
    document = {
        "collected_at": datetime.now(UTC).isoformat(),
        "instance": describe_instance(step.target),
        "prior_state": step.prior.model_dump(mode="json"),
    }
    return store_evidence(
        step.target.incident_id,
        f"instance/{step.target.instance_id}/metadata.json",
        to_json_bytes(document),
        "metadata",
    )


@aws_activity("ec2:GetConsoleOutput", *EVIDENCE_WRITE_ACTIONS)
def collect_console_output(target: Ec2Target) -> EvidenceObject:
    """The serial console output: boot messages, kernel panics, sometimes the attacker's own noise."""
    with typed_aws_errors(f"get console output of {target.instance_id}"):
        response = client("ec2", target.region, target.account_id).get_console_output(InstanceId=target.instance_id)
    encoded = response.get("Output") or ""
    try:
        text = base64.b64decode(encoded).decode("utf-8", errors="replace") if encoded else ""
    except ValueError:
        text = encoded
    document = {
        "collected_at": datetime.now(UTC).isoformat(),
        "instance_id": target.instance_id,
        "timestamp": response.get("Timestamp"),
        "output_base64": encoded,
        "output_text": text,
    }
    return store_evidence(
        target.incident_id,
        f"instance/{target.instance_id}/console-output.json",
        to_json_bytes(document),
        "console",
    )


@aws_activity(*EVIDENCE_WRITE_ACTIONS, "kms:DescribeKey", "kms:Sign")
def write_manifest(request: ManifestInput) -> EvidenceObject:
    """Every exhibit with its hash, version, retention and custody, and the incident's snapshots, in one hash
    chain (irflow/custody.py); signed with IRFLOW_MANIFEST_SIGNING_KEY_ID when set. Re-written (as a new,
    locked version, with a new signature) whenever the evidence grows."""
    document = build_manifest(
        request.incident_id,
        [object_entry(e) for e in request.evidence],
        [s.model_dump(mode="json") for s in request.snapshots],
    )
    manifest = store_evidence(
        request.incident_id, "manifest.json", to_json_bytes(document), "manifest", first_capture_wins=False
    )
    key_id = get_settings().manifest_signing_key_id
    if not key_id:
        return manifest
    return manifest.model_copy(update={"signature": _signature(request.incident_id, document, manifest, key_id)})


def _signature(incident_id: str, document: dict, manifest: EvidenceObject, key_id: str) -> EvidenceObject:
    """The signature of this manifest version beside it (`manifest.json.sig`): the one already there when it
    signs the same statement with the same key (a retry), else a new one."""
    settings, s3 = require_evidence_bucket()
    statement = signing_statement(document, manifest)
    key = manifest.key + SIGNATURE_SUFFIX
    with typed_aws_errors(f"read the signature s3://{manifest.bucket}/{key}"):
        current = head_or_none(s3, manifest.bucket, key, with_body=True)
        if current is not None:
            try:
                existing = json.loads(current["Body"].read())
            except ValueError:
                existing = {}  # not ours to read: a new version is signed beside it
            if existing.get("statement") == statement and existing.get("requested_key_id") == key_id:
                return _record_from_head(manifest.bucket, key, SIGNATURE_KIND, current)
    region = region_of_arn(key_id) or settings.evidence_region or None
    with typed_aws_errors(f"sign the manifest of {incident_id} with {key_id}"):
        kms = client("kms", region)
        signature = sign_statement(kms, key_id, statement, _signing_algorithm(kms, key_id))
    body = to_json_bytes({**signature, "requested_key_id": key_id})
    return store_evidence(
        incident_id, "manifest.json" + SIGNATURE_SUFFIX, body, SIGNATURE_KIND, first_capture_wins=False
    )


@lru_cache(maxsize=16)
def _signing_algorithm(kms: Any, key_id: str) -> str:
    """The algorithm a signing key is used with (kms:DescribeKey once per key and client, not per manifest)."""
    return choose_algorithm(kms.describe_key(KeyId=key_id)["KeyMetadata"].get("SigningAlgorithms") or [])
