"""The chain of custody: the manifest's hash chain, its KMS signature, and the verifier over moto in-process."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from activities.evidence import collect_console_output, store_raw_finding, write_manifest
from irflow.custody import (
    GENESIS,
    Verifier,
    build_manifest,
    chain_problems,
    entry_digest,
    sign_statement,
    signature_problems,
    verify_evidence,
)
from irflow.models.incident import ManifestInput
from tests.activities.evidence_support import (
    INCIDENT_ID,
    raw_finding_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    raw_request_fixture,  # noqa: F401
    s3,
    target_fixture,  # noqa: F401
)

OBJECTS = [
    {"key": f"incidents/x/{name}.json", "sha256": f"{i:064x}", "size": i} for i, name in enumerate("abc", start=1)
]
SNAPSHOTS = [{"snapshot_id": "snap-1", "volume_id": "vol-1", "state": "completed", "sha256": "f" * 64}]


# --- the chain ---


def test_each_entry_carries_the_digest_of_the_one_before_from_a_fixed_genesis():
    manifest = build_manifest("x", OBJECTS, SNAPSHOTS)
    entries = manifest["objects"] + manifest["snapshots"]
    assert entries[0]["previous_digest"] == GENESIS == "0" * 64
    for before, entry in zip(entries, entries[1:], strict=False):
        assert entry["previous_digest"] == entry_digest(before)
    assert manifest["chain_head"] == entry_digest(entries[-1])
    assert manifest["snapshots"][0]["sha256"] == "f" * 64, "a snapshot's fields are kept as recorded"
    assert chain_problems(manifest) == []
    assert build_manifest("x", OBJECTS, SNAPSHOTS) == manifest, "deterministic for the same inputs"


@pytest.mark.parametrize(
    ("alter", "named"),
    [
        (lambda m: m["objects"][1].update(sha256="e" * 64), "incidents/x/b.json"),
        (lambda m: m["objects"].pop(0), "incidents/x/b.json"),
        (lambda m: m["objects"].reverse(), "incidents/x/c.json"),
        (lambda m: m["snapshots"][0].update(state="error"), "chain head"),
        (lambda m: m["snapshots"].clear(), "chain head"),
    ],
    ids=["altered", "removed", "reordered", "last-altered", "cut"],
)
def test_a_broken_link_is_named(alter, named):
    manifest = build_manifest("x", OBJECTS, SNAPSHOTS)
    alter(manifest)
    problems = chain_problems(manifest)
    assert problems and named in " ".join(problems)


def test_an_unchained_manifest_is_refused():
    assert chain_problems({"incident_id": "x", "objects": OBJECTS}) == ["not a chained manifest (format None)"]


# --- the signature ---


def _signing_key(spec: str = "ECC_NIST_P256") -> str:
    kms = boto3.client("kms")
    return kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]["KeyId"]


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_a_signature_verifies_with_its_key_and_kms_agrees(aws, spec):
    kms, key = boto3.client("kms"), _signing_key(spec)
    statement = {"manifest_sha256": "a" * 64, "chain_head": "b" * 64}
    signed = sign_statement(kms, key, statement)
    assert signed["algorithm"] == {"ECC_NIST_P256": "ECDSA_SHA_256", "RSA_2048": "RSASSA_PSS_SHA_256"}[spec]
    assert signature_problems(kms, key, signed, {}) == []
    assert kms.verify(
        KeyId=key,
        Message=json.dumps(statement, sort_keys=True, separators=(",", ":")).encode(),
        MessageType="RAW",
        Signature=base64.b64decode(signed["signature"]),
        SigningAlgorithm=signed["algorithm"],
    )["SignatureValid"]


def test_a_signature_by_another_key_or_over_another_statement_fails(aws):
    kms, trusted, other = boto3.client("kms"), _signing_key(), _signing_key()
    forged = sign_statement(kms, other, {"manifest_sha256": "a" * 64})
    problems = signature_problems(kms, trusted, forged, {})
    assert any("not the trusted key" in p for p in problems)
    assert any("does not verify" in p for p in problems)
    # Claiming the trusted key does not help: the bytes do not verify with its public key.
    claimed = {**forged, "kms_key_id": trusted}
    refused = [f"the signature does not verify with the trusted key {trusted}"]
    assert signature_problems(kms, trusted, claimed, {}) == refused
    genuine = sign_statement(kms, trusted, {"manifest_sha256": "a" * 64})
    altered = {**genuine, "statement": {"manifest_sha256": "b" * 64}}
    assert signature_problems(kms, trusted, altered, {}) == refused


# --- the verifier over stored evidence ---


def _verify(workload, evidence, **options) -> list:
    verifier = Verifier(
        s3(workload),
        boto3.client("kms"),
        evidence_key_id=workload.kms_key_id,
        signing_key_id=options.pop("signing_key_id", workload.signing_key_id),
    )
    return verify_evidence(verifier, INCIDENT_ID, evidence, **options)


def _failed(checks) -> list[tuple[str, str]]:
    return [(c.check, c.subject.split("@")[0]) for c in checks if c.status == "fail"]


def test_intact_evidence_passes_and_a_version_put_beside_it_is_named(workload, raw_request, target):
    stored = [store_raw_finding(raw_request), collect_console_output(target)]
    assert stored[0].principal_arn and stored[0].worker_identity and stored[0].collected_at
    manifest = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=stored))
    assert manifest.signature is not None and manifest.signature.key.endswith("manifest.json.sig")
    evidence = [*stored, manifest]
    checks = _verify(workload, evidence)
    assert _failed(checks) == []
    checked = {(c.check, c.subject.split("@")[0]) for c in checks}
    for record in stored:
        assert {("content", record.key), ("lock", record.key), ("kms", record.key), ("custody", record.key)} <= checked
    assert ("chain", manifest.key) in checked and ("signature", manifest.signature.key) in checked

    s3(workload).put_object(Bucket=stored[1].bucket, Key=stored[1].key, Body=b"{}")  # a forged console output
    assert _failed(_verify(workload, evidence)) == [("versions", stored[1].key)]


def test_an_unsigned_manifest_fails_unless_allowed(workload, raw_request, monkeypatch):
    from irflow.models.settings import get_settings

    monkeypatch.delenv("IRFLOW_MANIFEST_SIGNING_KEY_ID")
    get_settings.cache_clear()
    stored = [store_raw_finding(raw_request)]
    manifest = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=stored))
    assert manifest.signature is None
    assert _failed(_verify(workload, [*stored, manifest])) == [("signature", manifest.key)]
    allowed = _verify(workload, [*stored, manifest], allow_unsigned=True)
    assert _failed(allowed) == [] and ("signature", "warn") in {(c.check, c.status) for c in allowed}


def test_a_manifest_signed_by_a_key_the_verifier_does_not_trust_fails(workload, raw_request):
    stored = [store_raw_finding(raw_request)]
    manifest = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=stored))
    checks = _verify(workload, [*stored, manifest], signing_key_id=_signing_key())
    assert _failed(checks) == [("signature", manifest.signature.key)] * 2


def test_a_version_put_beside_an_exhibit_is_named_without_being_read(workload, raw_request, target):
    stored = [store_raw_finding(raw_request), collect_console_output(target)]
    manifest = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=stored))
    s3(workload).put_object(Bucket=stored[1].bucket, Key=stored[1].key, Body=b"{}")  # a re-upload, of any size
    reader, read = s3(workload), []
    reader.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: read.append((params["Key"], params.get("VersionId")))
    )
    verifier = Verifier(reader, boto3.client("kms"), workload.kms_key_id, workload.signing_key_id)
    assert _failed(verify_evidence(verifier, INCIDENT_ID, [*stored, manifest])) == [("versions", stored[1].key)]
    assert [r for r in read if r[0] == stored[1].key] == [(stored[1].key, stored[1].version_id)], "the recorded one"
