"""Chain of custody: the hash-chained manifest, its KMS signature, and the checks `irflow verify` runs.

The manifest lists every evidence object (with who wrote it, when, from which activity attempt of which run)
and every snapshot, each entry carrying the SHA-256 of the canonical JSON of the entry before it (the first,
GENESIS): an entry cannot be altered, dropped or reordered without breaking the chain. A signing statement
(the incident, the manifest's key, version, SHA-256 and the chain's head) is signed with an asymmetric KMS key
(`IRFLOW_MANIFEST_SIGNING_KEY_ID`) and stored beside the manifest, under Object Lock like everything else.

`verify_evidence` re-reads every object by version id and re-hashes it, checks its lock, retention and KMS key,
every version of the manifest's chain and every signature: it takes boto3 S3 and KMS clients, nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from irflow.models.evidence import EvidenceObject
from irflow.models.finding import canonical_json

MANIFEST_FORMAT = "irflow-manifest/2"
READ_CHUNK = 8 * 1024 * 1024
KEEP_AT_MOST = 64 * 1024 * 1024  # a manifest or signature is parsed; anything larger is only hashed
GENESIS = "0" * 64
MANIFEST_KIND, SIGNATURE_KIND = "manifest", "manifest-signature"
SIGNATURE_SUFFIX = ".sig"
# Preferred first; a key offers those of its spec (ECC_NIST_P256: ECDSA_SHA_256; RSA_*: the RSASSA ones).
SIGNING_ALGORITHMS = (
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)
_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


# --- the chain ---


def entry_digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(entry)).hexdigest()


def object_entry(record: EvidenceObject) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"signature"})


def build_manifest(incident_id: str, objects: list[dict[str, Any]], snapshots: list[dict[str, Any]]) -> dict:
    """The manifest document: objects, then snapshots, one chain through both. Deterministic for its inputs."""
    previous = GENESIS
    chained: dict[str, list[dict[str, Any]]] = {"objects": [], "snapshots": []}
    for section, entries in (("objects", objects), ("snapshots", snapshots)):
        for entry in entries:
            linked = {**entry, "previous_digest": previous}
            chained[section].append(linked)
            previous = entry_digest(linked)
    return {
        "format": MANIFEST_FORMAT,
        "incident_id": incident_id,
        "genesis": GENESIS,
        **chained,
        "chain_head": previous,
    }


def _entry_name(entry: dict[str, Any], index: int) -> str:
    return str(entry.get("key") or entry.get("snapshot_id") or f"entry {index}")


def chain_problems(document: dict[str, Any]) -> list[str]:
    """What is wrong with the manifest's chain, naming the entry; empty when every link holds."""
    if document.get("format") != MANIFEST_FORMAT:
        return [f"not a chained manifest (format {document.get('format')!r})"]
    entries = list(document.get("objects", [])) + list(document.get("snapshots", []))
    problems, previous = [], GENESIS
    for index, entry in enumerate(entries):
        if entry.get("previous_digest") != previous:
            before = _entry_name(entries[index - 1], index - 1) if index else "the genesis value"
            problems.append(
                f"entry {index} ({_entry_name(entry, index)}) does not chain to {before}: an entry was altered, "
                "removed or reordered"
            )
        previous = entry_digest(entry)
    if document.get("chain_head") != previous:
        last = _entry_name(entries[-1], len(entries) - 1) if entries else "the genesis value"
        problems.append(f"chain head does not match the last entry ({last}): it was altered or entries were cut")
    return problems


# --- the signature ---


def signing_statement(document: dict[str, Any], manifest: EvidenceObject) -> dict[str, Any]:
    """What is signed (small, so KMS signs it as RAW): the manifest's exact version and bytes, and its chain."""
    return {
        "incident_id": document.get("incident_id"),
        "manifest_key": manifest.key,
        "manifest_version_id": manifest.version_id,
        "manifest_sha256": manifest.sha256,
        "chain_head": document.get("chain_head"),
    }


def choose_algorithm(offered: Iterable[str]) -> str:
    offered = list(offered)
    for algorithm in SIGNING_ALGORITHMS:
        if algorithm in offered:
            return algorithm
    raise ValueError(f"the key offers no signing algorithm irflow verifies ({', '.join(offered) or 'none'})")


def sign_statement(kms: Any, key_id: str, statement: dict[str, Any], algorithm: str | None = None) -> dict[str, Any]:
    """The signature document stored beside the manifest (kms:Sign; kms:DescribeKey unless `algorithm` is given, as
    choose_algorithm picks it from the key's)."""
    if algorithm is None:
        algorithm = choose_algorithm(kms.describe_key(KeyId=key_id)["KeyMetadata"].get("SigningAlgorithms") or [])
    signed = kms.sign(KeyId=key_id, Message=canonical_json(statement), MessageType="RAW", SigningAlgorithm=algorithm)
    return {
        "statement": statement,
        "kms_key_id": signed["KeyId"],
        "algorithm": signed["SigningAlgorithm"],
        "message_type": "RAW",
        "message": "canonical JSON of statement (sorted keys, no spaces)",
        "signature": base64.b64encode(signed["Signature"]).decode("ascii"),
    }


def same_key(one: str | None, other: str | None) -> bool:
    """A KMS key id and an ARN of it name the same key (AWS answers ARNs where it was given ids)."""
    if not one or not other:
        return False
    if one == other:
        return True
    return one.endswith(f":key/{other}") or other.endswith(f":key/{one}")


def public_key_verifies(public_key_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    public_key = serialization.load_der_public_key(public_key_der)
    digest = _HASHES[algorithm.rsplit("_", 1)[-1]]()
    try:
        if algorithm.startswith("ECDSA") and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(digest))
        elif algorithm.startswith("RSASSA_PSS") and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PSS(padding.MGF1(digest), padding.PSS.AUTO), digest)
        elif algorithm.startswith("RSASSA_PKCS1") and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), digest)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def signature_problems(kms: Any, trusted_key_id: str, signature: dict[str, Any], public_keys: dict) -> list[str]:
    """Empty when `signature` was made by the trusted key (its public key from kms:GetPublicKey, kept in
    `public_keys` by key id)."""
    if trusted_key_id not in public_keys:
        answer = kms.get_public_key(KeyId=trusted_key_id)
        public_keys[trusted_key_id] = (answer["KeyId"], answer["PublicKey"])
    trusted_arn, der = public_keys[trusted_key_id]
    problems = []
    named = signature.get("kms_key_id")
    if not (same_key(named, trusted_arn) or same_key(named, trusted_key_id)):
        problems.append(f"signed with key {named}, not the trusted key {trusted_key_id}")
    algorithm = str(signature.get("algorithm"))
    if algorithm not in SIGNING_ALGORITHMS:
        return [*problems, f"unknown signing algorithm {algorithm}"]
    try:
        raw = base64.b64decode(signature.get("signature") or "", validate=True)
    except ValueError:
        return [*problems, "the signature is not base64"]
    if not public_key_verifies(der, algorithm, canonical_json(signature.get("statement")), raw):
        problems.append(f"the signature does not verify with the trusted key {trusted_key_id}")
    return problems


# --- verification ---


@dataclass(frozen=True)
class Check:
    check: str  # content, lock, retention, kms, custody, versions, manifest, chain, signature
    subject: str  # the object (key, and version id when it matters)
    status: str  # pass, fail, warn
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _subject(key: str, version_id: str | None) -> str:
    return f"{key}@{version_id}" if version_id else key


def hash_stream(
    body: Any, keep_at_most: int = 0, on_chunk: Callable[[int], None] | None = None
) -> tuple[bytes, str, int]:
    """(the bytes when at most `keep_at_most`, else b""; SHA-256; size) of a streaming body, read READ_CHUNK at a
    time and closed: a memory image of many GiB is hashed in bounded memory. `on_chunk(bytes so far)` runs after
    each chunk (an activity heartbeats there)."""
    digest, size, kept = hashlib.sha256(), 0, []
    try:
        for chunk in body.iter_chunks(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if size <= keep_at_most:
                kept.append(chunk)
            if on_chunk is not None:
                on_chunk(size)
    finally:
        body.close()
    return (b"".join(kept) if size <= keep_at_most else b""), digest.hexdigest(), size


# The custody fields of an evidence record, by the name of the S3 user metadata that carries each on the object.
CUSTODY_METADATA = {
    "collected-at": "collected_at",
    "activity-type": "activity_type",
    "activity-attempt": "activity_attempt",
    "workflow-id": "workflow_id",
    "workflow-run-id": "workflow_run_id",
    "worker-identity": "worker_identity",
    "principal-arn": "principal_arn",
}


def custody_fields(metadata: dict[str, str]) -> dict[str, Any]:
    """The record's custody fields from an object's metadata (or from what is about to be written as such);
    EvidenceObject turns the texts into a time and a number."""
    fields: dict[str, Any] = {field: metadata.get(name) for name, field in CUSTODY_METADATA.items()}
    attempt = fields["activity_attempt"]
    fields["activity_attempt"] = int(attempt) if attempt and attempt.isdigit() else None
    return fields


def _custody_metadata(record: EvidenceObject) -> dict[str, str]:
    if record.collected_by:
        # Written by someone else (the instance, for its memory image): its metadata carries only its own digest.
        return {"sha256": record.sha256}
    fields = {
        "sha256": record.sha256,
        "activity-type": record.activity_type,
        "activity-attempt": None if record.activity_attempt is None else str(record.activity_attempt),
        "workflow-id": record.workflow_id,
        "workflow-run-id": record.workflow_run_id,
        "worker-identity": record.worker_identity,
        "principal-arn": record.principal_arn,
    }
    return {name: value for name, value in fields.items() if value}


class Verifier:
    """One incident's evidence, checked against what the incident recorded (its state's evidence list and its
    final manifest). `evidence_key_id` is the KMS key evidence must be encrypted with (empty: the recorded one);
    `signing_key_id` the only key whose signature is trusted."""

    def __init__(self, s3: Any, kms: Any, evidence_key_id: str = "", signing_key_id: str = "", now=None) -> None:
        self.s3, self.kms = s3, kms
        self.evidence_key_id, self.signing_key_id = evidence_key_id, signing_key_id
        self.now = now or datetime.now(UTC)
        self.checks: list[Check] = []
        self.public_keys: dict = {}
        self._evidence_key: tuple[str, ...] | None = None

    def add(self, check: str, subject: str, problems: list[str], passed: str) -> None:
        for problem in problems:
            self.checks.append(Check(check, subject, "fail", problem))
        if not problems:
            self.checks.append(Check(check, subject, "pass", passed))

    def _evidence_key_names(self) -> tuple[str, ...]:
        if self._evidence_key is None:
            metadata = self.kms.describe_key(KeyId=self.evidence_key_id)["KeyMetadata"]
            self._evidence_key = (self.evidence_key_id, metadata["KeyId"], metadata["Arn"])
        return self._evidence_key

    def read(self, record: EvidenceObject) -> bytes | None:
        """Re-read the recorded version, re-hash it, check its lock, retention, key and custody metadata."""
        subject = _subject(record.key, record.version_id)
        if not record.version_id:
            self.add("content", subject, ["no version id recorded: the object cannot be pinned"], "")
            return None
        try:
            got = self.s3.get_object(Bucket=record.bucket, Key=record.key, VersionId=record.version_id)
        except ClientError as error:
            self.add("content", subject, [f"cannot read the recorded version: {error}"], "")
            return None
        body, digest, size = hash_stream(got["Body"], KEEP_AT_MOST)
        content = [] if digest == record.sha256 else [f"SHA-256 is {digest}, recorded {record.sha256}"]
        if size != record.size:
            content.append(f"size is {size} bytes, recorded {record.size}")
        self.add("content", subject, content, f"SHA-256 {digest[:16]}…, {size} bytes")
        mode = got.get("ObjectLockMode")
        lock = [] if mode else ["not under Object Lock"]
        if mode and record.lock_mode and mode != record.lock_mode:
            lock.append(f"lock mode {mode}, recorded {record.lock_mode}")
        self.add("lock", subject, lock, f"Object Lock {mode}")
        until = got.get("ObjectLockRetainUntilDate")
        if until is None or (record.retain_until and until < record.retain_until):
            self.add("retention", subject, [f"retained until {until}, recorded {record.retain_until}"], "")
        elif until < self.now:
            self.checks.append(Check("retention", subject, "warn", f"retention lapsed on {until}"))
        else:
            self.add("retention", subject, [], f"retained until {until:%Y-%m-%d}")
        self._check_key(record, subject, got)
        metadata = got.get("Metadata") or {}
        custody = [
            f"metadata {name} is {metadata.get(name)!r}, recorded {value!r}"
            for name, value in _custody_metadata(record).items()
            if metadata.get(name) != value and not (record.collected_by and name not in metadata)
        ]
        written = f"written by {record.activity_type or '?'} as {record.principal_arn}"
        if record.collected_by:
            written = f"written by {record.collected_by}; hashed by {record.activity_type or '?'}"
        self.add("custody", subject, custody, written)
        return body

    def _check_key(self, record: EvidenceObject, subject: str, got: dict[str, Any]) -> None:
        used = got.get("SSEKMSKeyId")
        if got.get("ServerSideEncryption") != "aws:kms":
            self.add("kms", subject, [f"not SSE-KMS ({got.get('ServerSideEncryption')})"], "")
        elif self.evidence_key_id:
            ok = any(same_key(used, name) for name in self._evidence_key_names())
            self.add("kms", subject, [] if ok else [f"encrypted with {used}, not {self.evidence_key_id}"], f"{used}")
        else:
            ok = not record.kms_key_id or same_key(used, record.kms_key_id)
            self.add("kms", subject, [] if ok else [f"encrypted with {used}, recorded {record.kms_key_id}"], f"{used}")

    def check_signature(self, record: EvidenceObject, manifest: EvidenceObject) -> None:
        subject = _subject(record.key, record.version_id)
        body = self.read(record)
        if body is None:
            return
        try:
            signature = json.loads(body)
        except ValueError:
            self.add("signature", subject, ["not a signature document"], "")
            return
        self.check_signed(subject, signature, manifest)

    def check_signed(self, subject: str, signature: dict[str, Any], manifest: EvidenceObject | None) -> None:
        """The signature check of one signature document: it signs `manifest` (None: no manifest version the
        incident recorded), and the trusted key made it (its public key asked of KMS once, kept here)."""
        statement = signature.get("statement") or {}
        signed = (statement.get("manifest_version_id"), statement.get("manifest_sha256"))
        if manifest is None:
            problems = ["signs no manifest version the incident recorded"]
        elif signed != (manifest.version_id, manifest.sha256):
            problems = [f"signs manifest version {signed[0]}, not {manifest.version_id}"]
        else:
            problems = []
        if not self.signing_key_id:
            problems.append("no trusted signing key (IRFLOW_MANIFEST_SIGNING_KEY_ID or --signing-key) to check it")
        else:
            problems += signature_problems(self.kms, self.signing_key_id, signature, self.public_keys)
        self.add("signature", subject, problems, f"{signature.get('algorithm')} by {signature.get('kms_key_id')}")

    def check_manifest(self, record: EvidenceObject) -> dict[str, Any] | None:
        body = self.read(record)
        if body is None:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            self.add("chain", _subject(record.key, record.version_id), ["the manifest is not JSON"], "")
            return None
        entries = len(document.get("objects", [])) + len(document.get("snapshots", []))
        self.add("chain", _subject(record.key, record.version_id), chain_problems(document), f"{entries} entries")
        return document


def _listed_versions(s3: Any, bucket: str, prefix: str) -> tuple[list[dict], list[dict]]:
    versions, markers = [], []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions += page.get("Versions", [])
        markers += page.get("DeleteMarkers", [])
    return versions, markers


def _as_record(entry: dict[str, Any]) -> EvidenceObject:
    return EvidenceObject.model_validate({k: v for k, v in entry.items() if k != "previous_digest"})


def verify_evidence(
    verifier: Verifier, incident_id: str, evidence: list[EvidenceObject], allow_unsigned: bool = False
) -> list[Check]:
    """Every check of one incident's evidence against `evidence`, the list the incident recorded (its state)."""
    manifests = [e for e in evidence if e.kind == MANIFEST_KIND]
    if not manifests:
        verifier.add("manifest", f"incidents/{incident_id}/manifest.json", ["the incident recorded no manifest"], "")
        return verifier.checks
    recorded: dict[tuple[str, str | None], EvidenceObject] = {}
    for record in evidence:
        recorded[(record.key, record.version_id)] = record
        if record.signature:
            recorded[(record.signature.key, record.signature.version_id)] = record.signature
    documents = {m.version_id: verifier.check_manifest(m) for m in manifests}
    final = manifests[-1]
    for manifest in manifests:
        if manifest.signature:
            verifier.check_signature(manifest.signature, manifest)
    if not final.signature:
        subject = _subject(final.key, final.version_id)
        if allow_unsigned:
            verifier.checks.append(
                Check("signature", subject, "warn", "unsigned manifest (allowed by --allow-unsigned)")
            )
        else:
            verifier.add("signature", subject, ["the manifest is unsigned (no IRFLOW_MANIFEST_SIGNING_KEY_ID)"], "")

    document = documents[final.version_id] or {}
    listed = {(o.get("key"), o.get("version_id")): o for o in document.get("objects", [])}
    for (key, version), entry in listed.items():
        record = _as_record(entry)
        mine = recorded.get((key, version))
        if mine is None:
            verifier.add(
                "manifest", _subject(key, version), ["listed in the manifest, not recorded by the incident"], ""
            )
        elif object_entry(mine) != object_entry(record):
            differ = sorted(k for k, v in object_entry(record).items() if object_entry(mine).get(k) != v)
            verifier.add(
                "manifest", _subject(key, version), [f"entry differs from the incident's record: {differ}"], ""
            )
        else:
            verifier.add("manifest", _subject(key, version), [], "entry matches the incident's record")
        verifier.read(record)
    for (key, version), record in recorded.items():
        if (key, version) in listed or record.kind in (MANIFEST_KIND, SIGNATURE_KIND):
            continue
        verifier.checks.append(Check("manifest", _subject(key, version), "warn", "recorded, not yet in the manifest"))
        verifier.read(record)
    _check_versions(verifier, incident_id, final, set(recorded) | set(listed), manifests)
    return verifier.checks


def _check_versions(verifier: Verifier, incident_id: str, final: EvidenceObject, known: set, manifests: list) -> None:
    """Nothing beside the recorded versions: a version put later, or a delete marker, is named."""
    prefix = final.key[: -len("manifest.json")] if final.key.endswith("manifest.json") else f"incidents/{incident_id}/"
    versions, markers = _listed_versions(verifier.s3, final.bucket, prefix)
    known_keys = {key for key, _ in known}
    by_version = {m.version_id: m for m in manifests}
    for marker in markers:
        if marker["Key"] in known_keys:
            subject = _subject(marker["Key"], marker["VersionId"])
            verifier.add("versions", subject, ["a delete marker hides the recorded version"], "")
    for version in versions:
        key, version_id = version["Key"], version["VersionId"]
        subject = _subject(key, version_id)
        if (key, version_id) in known:
            continue
        if key not in known_keys:
            verifier.checks.append(Check("versions", subject, "warn", "an object the incident did not record"))
            continue
        latest = "; it is the latest version, what a reader without a version id gets" if version["IsLatest"] else ""
        verifier.add(
            "versions", subject, [f"a version the incident did not record, beside the recorded one{latest}"], ""
        )
        if key not in (final.key, final.key + SIGNATURE_SUFFIX):
            continue  # only a manifest or a signature is read: an image re-uploaded beside its record is not
        got = verifier.s3.get_object(Bucket=final.bucket, Key=key, VersionId=version_id)
        try:
            document = json.loads(hash_stream(got["Body"], KEEP_AT_MOST)[0])
        except ValueError:
            continue
        if not isinstance(document, dict):
            continue
        if key == final.key:
            verifier.add("chain", subject, chain_problems(document), "chain holds")
        else:
            manifest = by_version.get((document.get("statement") or {}).get("manifest_version_id"))
            verifier.check_signed(subject, document, manifest)
