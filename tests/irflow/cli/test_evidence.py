"""`irflow verify` on a real incident (the Temporal dev server, the demo account in moto): it passes on the
evidence as the incident left it, and names the object each time someone tampers with the bucket."""

from __future__ import annotations

import asyncio
import json

import boto3
from typer.testing import CliRunner

from irflow.cli import app
from irflow.cli.evidence import EXIT_UNVERIFIED
from irflow.custody import chain_problems, sign_statement, signing_statement
from irflow.models.incident import Status
from tests.support import open_incident, running_worker, wait_for

RUNNER = CliRunner()


async def _verify(address: str, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(RUNNER.invoke, app, ["verify", *args], env={"TEMPORAL_ADDRESS": address})
    return result.exit_code, result.stdout


async def _failures(address: str, incident_id: str, *options: str) -> set[tuple[str, str, str]]:
    """(check, key, detail) of each failed check, from `irflow verify ID --json`, which must exit 5."""
    code, output = await _verify(address, incident_id, "--json", *options)
    assert code == EXIT_UNVERIFIED, output
    report = json.loads(output)
    assert report["verified"] is False
    return {(c["check"], c["subject"].split("@")[0], c["detail"]) for c in report["checks"] if c["status"] == "fail"}


def _named(failures: set[tuple[str, str, str]]) -> set[tuple[str, str]]:
    return {(check, key) for check, key, _ in failures}


async def test_verify_passes_on_an_intact_incident_and_names_each_tampered_object(dev_env, workload):
    client = dev_env.client
    address = client.service_client.config.target_host
    s3 = boto3.client("s3")
    async with running_worker(client) as settings:  # queries on the closed incident need its worker
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=90)
        await handle.signal("approve", {"by": "alice", "comment": "confirmed", "eradication": "stop"})
        final = await handle.result()
        manifest = next(e for e in reversed(final.evidence) if e.kind == "manifest")
        assert manifest.signature is not None, "the demo account signs its manifests"
        assert {e.kind for e in final.evidence} >= {"finding", "metadata", "console", "report", "manifest"}
        written_by = {e.activity_type for e in final.evidence}
        assert {"collect_instance_metadata", "write_report", "write_manifest"} <= written_by
        assert all(e.workflow_id == handle.id and e.principal_arn for e in final.evidence)

        # Intact: every check passes, and every recorded object was re-read and re-hashed.
        code, output = await _verify(address, final.incident_id, "--json")
        assert code == 0, output
        report = json.loads(output)
        assert report["verified"] is True
        assert [c for c in report["checks"] if c["status"] == "fail"] == []
        content = {c["subject"] for c in report["checks"] if c["check"] == "content" and c["status"] == "pass"}
        assert {f"{e.key}@{e.version_id}" for e in final.evidence} <= content
        passed = {(c["check"], c["subject"]) for c in report["checks"] if c["status"] == "pass"}
        assert ("chain", f"{manifest.key}@{manifest.version_id}") in passed
        assert ("signature", f"{manifest.signature.key}@{manifest.signature.version_id}") in passed
        code, table = await _verify(address, final.incident_id)
        assert code == 0 and "every check passed" in table

        # 1. A newer version of an evidence object, put beside the recorded one.
        metadata = next(e for e in final.evidence if e.kind == "metadata")
        s3.put_object(Bucket=metadata.bucket, Key=metadata.key, Body=b'{"instance": "nothing to see"}')
        failures = await _failures(address, final.incident_id)
        assert _named(failures) == {("versions", metadata.key)}
        code, table = await _verify(address, final.incident_id)
        assert code == EXIT_UNVERIFIED and "1 check(s) failed" in table
        assert f"FAILED versions {metadata.key}@" in table

        # 2. A manifest entry altered (to cover the forgery): a new manifest version whose chain breaks there.
        document = json.loads(s3.get_object(Bucket=manifest.bucket, Key=manifest.key)["Body"].read())
        entry = next(o for o in document["objects"] if o["key"] == metadata.key)
        entry["sha256"] = "0" * 64
        assert chain_problems(document)
        s3.put_object(Bucket=manifest.bucket, Key=manifest.key, Body=json.dumps(document).encode())
        failures = await _failures(address, final.incident_id)
        assert _named(failures) == {("versions", metadata.key), ("versions", manifest.key), ("chain", manifest.key)}
        assert any(check == "chain" and metadata.key in detail for check, _, detail in failures)

        # 3. The signature from another key, put beside the manifest's own.
        kms = boto3.client("kms")
        other_key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
        forged = sign_statement(kms, other_key, signing_statement(document, manifest))
        s3.put_object(Bucket=manifest.bucket, Key=manifest.signature.key, Body=json.dumps(forged).encode())
        failures = await _failures(address, final.incident_id)
        signature_failures = {detail for check, key, detail in failures if key == manifest.signature.key}
        assert any("not the trusted key" in d for d in signature_failures)
        assert any("does not verify" in d for d in signature_failures)
        assert ("versions", manifest.signature.key) in _named(failures)

        # And a verifier that trusts another key refuses the incident's own signature.
        failures = await _failures(address, final.incident_id, "--signing-key", other_key)
        genuine = f"{manifest.signature.key}@{manifest.signature.version_id}"
        assert ("signature", manifest.signature.key) in _named(failures)
        code, output = await _verify(address, final.incident_id, "--json", "--signing-key", other_key)
        assert any(
            c["subject"] == genuine and c["status"] == "fail" and "not the trusted key" in c["detail"]
            for c in json.loads(output)["checks"]
        )
