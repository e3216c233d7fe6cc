"""What the evidence tests share: the demo instance as an EC2 target and its step input, a finding as
GuardDuty sends it, an incident record about it, and what an auditor checks of every locked object.

The fixtures are registered under the names the tests ask for (`target`, `step`...) and defined under
other names, so that a test module imports them without its test arguments shadowing the import.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from activities.ec2_context import describe_instance_context
from irflow.devstack.demo import sample_finding
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.evidence import EvidenceObject
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, RawFindingInput

INCIDENT_ID = "inc-evidence-0001"
RETENTION = timedelta(days=365)


@pytest.fixture(name="target")
def target_fixture(workload) -> Ec2Target:
    return Ec2Target(
        incident_id=INCIDENT_ID,
        account_id=workload.account_id,
        region=workload.region,
        instance_id=workload.instance_id,
    )


@pytest.fixture(name="step")
def step_fixture(target) -> Ec2StepInput:
    return Ec2StepInput(target=target, prior=describe_instance_context(target))


@pytest.fixture(name="raw_finding")
def raw_finding_fixture(workload) -> dict:
    return sample_finding(workload.instance_id, workload.account_id, workload.region)


@pytest.fixture(name="raw_request")
def raw_request_fixture(raw_finding) -> RawFindingInput:
    return RawFindingInput(incident_id=INCIDENT_ID, finding_id=raw_finding["detail"]["id"], raw=raw_finding)


@pytest.fixture(name="incident_state")
def incident_state_fixture(raw_finding, step) -> IncidentState:
    finding = parse_guardduty(raw_finding).finding
    return IncidentState(
        incident_id=INCIDENT_ID,
        playbook="ec2-instance",
        severity=finding.severity,
        finding=finding,
        resource_id=step.target.instance_id,
        context=step.prior,
        received_at=datetime.now(UTC),
    )


def s3(workload):
    return boto3.client("s3", region_name=workload.region)


def stored_bytes(workload, record: EvidenceObject) -> bytes:
    return s3(workload).get_object(Bucket=record.bucket, Key=record.key, VersionId=record.version_id)["Body"].read()


def versions_of(workload, record: EvidenceObject) -> list[str]:
    listed = s3(workload).list_object_versions(Bucket=record.bucket, Prefix=record.key).get("Versions", [])
    return [v["VersionId"] for v in listed if v["Key"] == record.key]


def assert_locked_evidence(workload, record: EvidenceObject) -> None:
    """What an auditor checks: right place, bytes match the recorded hash, encrypted, locked, undeletable."""
    assert record.bucket == workload.evidence_bucket
    assert record.key.startswith(f"incidents/{INCIDENT_ID}/")
    assert record.version_id
    body = stored_bytes(workload, record)
    assert hashlib.sha256(body).hexdigest() == record.sha256
    assert len(body) == record.size
    head = s3(workload).head_object(Bucket=record.bucket, Key=record.key, VersionId=record.version_id)
    assert head["Metadata"]["sha256"] == record.sha256
    assert head["ServerSideEncryption"] == "aws:kms"
    key_id = head["SSEKMSKeyId"]  # AWS answers with the key's ARN, moto with the id it was given
    assert key_id == workload.kms_key_id or key_id.endswith(f":key/{workload.kms_key_id}")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    ahead = head["ObjectLockRetainUntilDate"] - datetime.now(UTC)
    assert RETENTION - timedelta(hours=1) < ahead <= RETENTION
    with pytest.raises(ClientError) as refused:
        s3(workload).delete_object(Bucket=record.bucket, Key=record.key, VersionId=record.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert hashlib.sha256(stored_bytes(workload, record)).hexdigest() == record.sha256


def instance_commands(workload) -> list[dict]:
    ssm = boto3.client("ssm", region_name=workload.region)
    return ssm.list_commands(InstanceId=workload.instance_id)["Commands"]
