"""Evidence capture: snapshots, locked and hashed objects in the evidence bucket, the manifest, and nothing
captured without a bucket to lock it in (memory, notifications and the stored report have their own tests)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError

from activities.aws import client
from activities.evidence import (
    collect_console_output,
    collect_instance_metadata,
    evidence_key,
    oldest_snapshot,
    snapshot_volumes,
    store_evidence,
    store_raw_finding,
    write_manifest,
)
from activities.memory import acquire_memory
from activities.report import write_report
from irflow.models.errors import INVALID_REQUEST
from irflow.models.evidence import EvidenceObject
from irflow.models.finding import pack_raw, parse_guardduty
from irflow.models.identifiers import region_of_arn
from irflow.models.incident import ManifestInput, RawFindingInput
from irflow.models.settings import get_settings
from tests.activities.evidence_support import (
    INCIDENT_ID,
    assert_locked_evidence,
    incident_state_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    instance_commands,
    raw_finding_fixture,  # noqa: F401
    raw_request_fixture,  # noqa: F401
    s3,
    step_fixture,  # noqa: F401
    stored_bytes,
    target_fixture,  # noqa: F401
    versions_of,
)
from tests.support import incident_snapshots

# --- snapshots ---


def test_snapshot_volumes_takes_one_tagged_snapshot_per_attached_volume(workload, step):
    taken = snapshot_volumes(step)
    snapshots = incident_snapshots(workload, INCIDENT_ID)
    assert len(step.prior.volumes) == 2
    assert sorted(s["VolumeId"] for s in snapshots) == sorted(v.volume_id for v in step.prior.volumes)
    assert sorted(s["SnapshotId"] for s in snapshots) == sorted(s.snapshot_id for s in taken)
    for snapshot in snapshots:
        tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
        assert tags["irflow:incident-id"] == INCIDENT_ID
        assert tags["irflow:instance-id"] == workload.instance_id


def test_snapshot_volumes_twice_still_one_snapshot_per_volume(workload, step):
    first = snapshot_volumes(step)
    second = snapshot_volumes(step)
    assert [s.snapshot_id for s in second] == [s.snapshot_id for s in first]
    assert len(incident_snapshots(workload, INCIDENT_ID)) == len(step.prior.volumes)


def test_the_oldest_snapshot_is_the_evidence_one_without_a_start_time_first():
    started = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # AWS's StartTime is aware
    later = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    taken = [{"SnapshotId": "snap-b", "StartTime": started}, {"SnapshotId": "snap-c", "StartTime": later}]
    assert oldest_snapshot(taken)["SnapshotId"] == "snap-b"
    assert oldest_snapshot([*taken, {"SnapshotId": "snap-a", "StartTime": started}])["SnapshotId"] == "snap-a"
    assert oldest_snapshot([*taken, {"SnapshotId": "snap-z"}])["SnapshotId"] == "snap-z"


# --- locked objects, first capture wins ---


def raw_finding_key(finding_id: str, raw: dict) -> str:
    """One object per distinct version of a finding: its id, then the start of the SHA-256 taken at intake."""
    return f"incidents/{INCIDENT_ID}/findings/{finding_id}-{parse_guardduty(raw).finding.raw_sha256[:12]}.json"


def test_raw_finding_is_stored_as_it_arrived_and_locked(workload, raw_request, raw_finding):
    record = store_raw_finding(raw_request)
    assert record.key == raw_finding_key(raw_request.finding_id, raw_finding)
    assert json.loads(stored_bytes(workload, record)) == raw_finding
    assert_locked_evidence(workload, record)


def test_raw_finding_sent_packed_is_the_same_evidence(workload, raw_request, raw_finding):
    packed = RawFindingInput(
        incident_id=INCIDENT_ID,
        finding_id=raw_request.finding_id,
        raw_packed=pack_raw(raw_finding),
        raw_sha256=parse_guardduty(raw_finding).finding.raw_sha256,
    )
    from_packed = store_raw_finding(packed)
    assert from_packed.key == raw_finding_key(raw_request.finding_id, raw_finding)
    assert json.loads(stored_bytes(workload, from_packed)) == raw_finding
    assert_locked_evidence(workload, from_packed)
    from_plain = store_raw_finding(raw_request)
    assert (from_plain.key, from_plain.version_id, from_plain.sha256) == (
        from_packed.key,
        from_packed.version_id,
        from_packed.sha256,
    )


def test_a_new_version_of_the_finding_is_kept_beside_the_first(workload, raw_request, raw_finding):
    first = store_raw_finding(raw_request)
    updated = json.loads(json.dumps(raw_finding))
    updated["detail"]["service"]["count"] += 1
    second = store_raw_finding(raw_request.model_copy(update={"raw": updated}))
    assert second.key == raw_finding_key(raw_request.finding_id, updated) != first.key
    assert json.loads(stored_bytes(workload, first)) == raw_finding
    assert json.loads(stored_bytes(workload, second)) == updated


def test_raw_finding_that_does_not_match_its_intake_hash_is_refused(workload, raw_request, raw_finding):
    tampered = json.loads(json.dumps(raw_finding))
    tampered["detail"]["severity"] = 2.0
    request = raw_request.model_copy(
        update={"raw": tampered, "raw_sha256": parse_guardduty(raw_finding).finding.raw_sha256}
    )
    with pytest.raises(ApplicationError) as refused:
        store_raw_finding(request)
    assert refused.value.type == "EvidenceIntegrity"
    assert refused.value.non_retryable is True
    assert raw_request.finding_id in str(refused.value)
    listed = s3(workload).list_objects_v2(Bucket=workload.evidence_bucket, Prefix=f"incidents/{INCIDENT_ID}/")
    assert listed.get("KeyCount", 0) == 0


def test_instance_metadata_holds_the_instance_and_its_prior_state(workload, step):
    record = collect_instance_metadata(step)
    document = json.loads(stored_bytes(workload, record))
    assert document["instance"]["InstanceId"] == workload.instance_id
    assert document["prior_state"]["instance_id"] == workload.instance_id
    assert len(document["prior_state"]["network_interfaces"]) == len(step.prior.network_interfaces)
    assert_locked_evidence(workload, record)


def test_console_output_is_stored_and_locked(workload, target):
    record = collect_console_output(target)
    document = json.loads(stored_bytes(workload, record))
    assert document["instance_id"] == workload.instance_id
    assert "output_base64" in document
    assert_locked_evidence(workload, record)


@pytest.mark.parametrize("capture", ["raw_finding", "metadata", "console"])
def test_first_capture_wins(workload, capture, raw_request, step, target):
    collect: Callable[[], EvidenceObject] = {
        "raw_finding": lambda: store_raw_finding(raw_request),
        "metadata": lambda: collect_instance_metadata(step),
        "console": lambda: collect_console_output(target),
    }[capture]
    first = collect()
    second = collect()
    assert second.version_id == first.version_id
    assert second.sha256 == first.sha256
    assert versions_of(workload, first) == [first.version_id]


# --- manifest ---


def test_manifest_lists_every_object_with_its_hash(workload, step, target, raw_request):
    snapshots = snapshot_volumes(step)
    evidence = [
        store_raw_finding(raw_request),
        collect_instance_metadata(step),
        collect_console_output(target),
        acquire_memory(target).evidence,
    ]
    manifest = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=evidence, snapshots=snapshots))
    assert manifest.key == f"incidents/{INCIDENT_ID}/manifest.json"
    document = json.loads(stored_bytes(workload, manifest))
    assert {(o["key"], o["sha256"]) for o in document["objects"]} == {(e.key, e.sha256) for e in evidence}
    assert {s["snapshot_id"] for s in document["snapshots"]} == {s.snapshot_id for s in snapshots}
    for listed in document["objects"]:
        stored = s3(workload).get_object(Bucket=listed["bucket"], Key=listed["key"], VersionId=listed["version_id"])
        assert hashlib.sha256(stored["Body"].read()).hexdigest() == listed["sha256"]
    assert_locked_evidence(workload, manifest)
    for record in evidence:
        assert_locked_evidence(workload, record)


def test_manifest_is_rewritten_only_when_the_evidence_grows(workload, step, target, raw_request):
    raw = store_raw_finding(raw_request)
    first = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=[raw]))
    again = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=[raw]))
    assert again.version_id == first.version_id
    grown = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=[raw, collect_console_output(target)]))
    assert grown.version_id != first.version_id
    assert sorted(versions_of(workload, first)) == sorted([first.version_id, grown.version_id])
    assert_locked_evidence(workload, first)
    assert_locked_evidence(workload, grown)


def test_the_signing_key_is_described_once_however_often_a_manifest_is_signed(workload, target, raw_request):
    settings = get_settings()
    kms = client("kms", region_of_arn(settings.manifest_signing_key_id) or settings.evidence_region or None)
    described = []
    kms.meta.events.register("provide-client-params.kms.DescribeKey", lambda params, **_: described.append(params))
    raw = store_raw_finding(raw_request)
    first = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=[raw]))
    grown = write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=[raw, collect_console_output(target)]))
    assert first.signature and grown.signature and first.signature.version_id != grown.signature.version_id
    assert len(described) == 1


# --- without an evidence bucket, nothing is captured that could not be locked ---


@pytest.fixture
def no_evidence_bucket(workload, monkeypatch):
    monkeypatch.delenv("IRFLOW_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()


EVIDENCE_ACTIVITIES = ["store_raw_finding", "metadata", "console", "manifest", "report", "acquire_memory"]


@pytest.mark.parametrize("activity_name", EVIDENCE_ACTIVITIES)
def test_without_evidence_bucket_is_not_configured(
    workload, no_evidence_bucket, activity_name, raw_request, step, target, incident_state
):
    run = {
        "store_raw_finding": lambda: store_raw_finding(raw_request),
        "metadata": lambda: collect_instance_metadata(step),
        "console": lambda: collect_console_output(target),
        "manifest": lambda: write_manifest(ManifestInput(incident_id=INCIDENT_ID, evidence=[])),
        "report": lambda: write_report(incident_state),
        "acquire_memory": lambda: acquire_memory(target),
    }[activity_name]
    with pytest.raises(ApplicationError) as raised:
        run()
    assert raised.value.type == "NotConfigured"
    assert raised.value.non_retryable is True
    # Nothing was sent to the instance whose output could not be kept.
    assert instance_commands(workload) == []


@pytest.mark.parametrize(
    ("incident_id", "relative_key"),
    [
        ("inc-1;id", "manifest.json"),
        ("../other-incident", "manifest.json"),
        (INCIDENT_ID, "../../other-incident/manifest.json"),
        (INCIDENT_ID, "iam/users/a b.json"),
        (INCIDENT_ID, "s3//configuration.json"),
        (INCIDENT_ID, "iam/users/$(id).json"),
    ],
)
def test_a_key_that_would_leave_the_incidents_prefix_or_carry_shell_syntax_is_refused(
    workload, incident_id, relative_key
):
    with pytest.raises(ApplicationError) as refused:
        store_evidence(incident_id, relative_key, b"{}", "test")
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    listed = s3(workload).list_objects_v2(Bucket=workload.evidence_bucket).get("Contents", [])
    assert listed == [], "nothing written"
    assert evidence_key(INCIDENT_ID, "iam/users/svc+ci@corp.json").endswith(f"{INCIDENT_ID}/iam/users/svc+ci@corp.json")
