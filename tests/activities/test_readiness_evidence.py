"""Readiness of the evidence bucket, the KMS keys and the SNS topics (moto, the demo workload's account): each
thing missing or misconfigured fails with evidence and the command that mends it."""

from __future__ import annotations

import json
import shlex

import boto3
import pytest

from activities.readiness_evidence import (
    evidence_bucket_encryption,
    evidence_bucket_object_lock,
    evidence_bucket_public_access,
    evidence_bucket_versioning,
    kms_keys,
    sns_topics,
)
from irflow.models.readiness import CheckStatus, ReadinessScope
from tests.support import setting

REGION = "us-east-1"
SCOPE = ReadinessScope(account_id="", region=REGION)
BUCKET_CHECKS = (
    evidence_bucket_versioning,
    evidence_bucket_object_lock,
    evidence_bucket_encryption,
    evidence_bucket_public_access,
)


def test_an_unset_or_missing_bucket_fails_every_bucket_check(aws, monkeypatch):
    for check in BUCKET_CHECKS:
        result = check(SCOPE)
        assert (result.status, result.evidence) == (
            CheckStatus.FAIL,
            "IRFLOW_EVIDENCE_BUCKET is not set: irflow captures no evidence",
        )
        assert "--object-lock-enabled-for-bucket" in result.fix
    setting(monkeypatch, evidence_bucket="no-such-evidence-bucket")
    for check in BUCKET_CHECKS:
        result = check(SCOPE)
        assert result.evidence == "evidence bucket no-such-evidence-bucket does not exist"
        assert result.fix.startswith("aws s3api create-bucket --bucket no-such-evidence-bucket")


def test_a_plain_bucket_fails_each_bucket_check_with_its_own_fix(workload, monkeypatch):
    setting(monkeypatch, evidence_bucket=workload.public_bucket)
    fixes = {check.check_id: check(SCOPE) for check in BUCKET_CHECKS}
    assert {r.status for r in fixes.values()} == {CheckStatus.FAIL}
    assert fixes["evidence_bucket.versioning"].fix == (
        f"aws s3api put-bucket-versioning --bucket {workload.public_bucket} --versioning-configuration Status=Enabled"
    )
    lock = fixes["evidence_bucket.object_lock"]
    assert "ObjectLockConfigurationNotFoundError" in lock.evidence
    assert '"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}' in lock.fix
    assert workload.kms_key_id in fixes["evidence_bucket.encryption"].fix  # IRFLOW_EVIDENCE_KMS_KEY_ID
    assert "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true" in (
        fixes["evidence_bucket.public_access"].fix
    )


def test_a_governance_default_retention_is_not_the_compliance_irflow_locks_with(workload):
    boto3.client("s3", region_name=REGION).put_object_lock_configuration(
        Bucket=workload.evidence_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": 1}},
        },
    )
    result = evidence_bucket_object_lock(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert "default retention is GOVERNANCE for 1 years, not COMPLIANCE" in result.evidence


def _default_encryption(bucket: str, **by_default: str) -> None:
    boto3.client("s3", region_name=REGION).put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": by_default}]},
    )


def test_encryption_must_be_kms_with_the_configured_key(workload):
    assert evidence_bucket_encryption(SCOPE).status == CheckStatus.PASS
    other = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    _default_encryption(workload.evidence_bucket, SSEAlgorithm="aws:kms", KMSMasterKeyID=other)
    result = evidence_bucket_encryption(SCOPE)
    assert result.status == CheckStatus.FAIL and f"uses {other}, not IRFLOW_EVIDENCE_KMS_KEY_ID" in result.evidence
    _default_encryption(workload.evidence_bucket, SSEAlgorithm="AES256")
    result = evidence_bucket_encryption(SCOPE)
    assert result.status == CheckStatus.FAIL and "default encryption is AES256, not SSE-KMS" in result.evidence
    configuration = json.loads(shlex.split(result.fix)[-1])
    assert configuration["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == workload.kms_key_id


def test_with_a_key_configured_the_aws_managed_key_is_not_it(workload):
    """SSE-KMS without a KMSMasterKeyID is the AWS managed aws/s3 key: the quarantine profile may not use it."""
    _default_encryption(workload.evidence_bucket, SSEAlgorithm="aws:kms")
    result = evidence_bucket_encryption(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert f"uses the AWS managed key (aws/s3), not IRFLOW_EVIDENCE_KMS_KEY_ID {workload.kms_key_id}" in (
        result.evidence
    )


def test_the_configured_key_is_recognised_however_it_is_named(workload, monkeypatch):
    kms = boto3.client("kms", region_name=REGION)
    key = kms.describe_key(KeyId=workload.kms_key_id)["KeyMetadata"]
    kms.create_alias(AliasName="alias/irflow-evidence", TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:{REGION}:{workload.account_id}:alias/irflow-evidence"
    for on_the_bucket, configured in [
        (alias_arn, workload.kms_key_id),
        (key["Arn"], "alias/irflow-evidence"),
        (key["KeyId"], alias_arn),
    ]:
        _default_encryption(workload.evidence_bucket, SSEAlgorithm="aws:kms", KMSMasterKeyID=on_the_bucket)
        setting(monkeypatch, evidence_kms_key_id=configured)
        result = evidence_bucket_encryption(SCOPE)
        assert (result.status, result.evidence) == (
            CheckStatus.PASS,
            f"evidence bucket {workload.evidence_bucket}: default encryption aws:kms with {key['Arn']}",
        ), (on_the_bucket, configured)
    setting(monkeypatch, evidence_kms_key_id="alias/no-such-key")
    result = evidence_bucket_encryption(SCOPE)
    assert result.status == CheckStatus.FAIL and "IRFLOW_EVIDENCE_KMS_KEY_ID alias/no-such-key" in result.evidence


def test_public_access_block_names_the_settings_left_off(workload):
    boto3.client("s3", region_name=REGION).put_public_access_block(
        Bucket=workload.evidence_bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False,
        },
    )
    result = evidence_bucket_public_access(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert result.evidence.endswith("BlockPublicPolicy, RestrictPublicBuckets not set")
    assert result.problems == ["BlockPublicPolicy off", "RestrictPublicBuckets off"]


def test_keys_pending_deletion_or_missing_fail_and_no_key_configured_passes(workload, monkeypatch):
    kms = boto3.client("kms", region_name=REGION)
    assert kms_keys(SCOPE).status == CheckStatus.PASS
    kms.schedule_key_deletion(KeyId=workload.signing_key_id, PendingWindowInDays=7)
    setting(monkeypatch, payload_kms_key_id="alias/irflow-payloads")
    result = kms_keys(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert f"IRFLOW_EVIDENCE_KMS_KEY_ID {workload.kms_key_id}: Enabled" in result.evidence
    assert f"IRFLOW_MANIFEST_SIGNING_KEY_ID {workload.signing_key_id}: PendingDeletion" in result.evidence
    assert "IRFLOW_PAYLOAD_KMS_KEY_ID alias/irflow-payloads: not found" in result.evidence
    assert f"aws kms cancel-key-deletion --key-id {workload.signing_key_id}" in result.fix
    assert "set IRFLOW_PAYLOAD_KMS_KEY_ID to an existing key" in result.fix
    assert result.problems == [
        "IRFLOW_MANIFEST_SIGNING_KEY_ID: PendingDeletion",
        "IRFLOW_PAYLOAD_KMS_KEY_ID: not found",
    ]

    setting(monkeypatch, evidence_kms_key_id="", manifest_signing_key_id="", payload_kms_key_id="")
    assert kms_keys(SCOPE).status == CheckStatus.PASS


@pytest.mark.parametrize("unset_escalation", [False, True])
def test_topics_must_exist_and_the_team_topic_be_set(workload, monkeypatch, unset_escalation):
    sns = boto3.client("sns", region_name=REGION)
    assert sns_topics(SCOPE).status == CheckStatus.PASS
    if unset_escalation:
        setting(monkeypatch, escalation_topic_arn="")
        result = sns_topics(SCOPE)
        assert result.status == CheckStatus.PASS and "escalations go to the team's topic" in result.evidence
    else:
        sns.delete_topic(TopicArn=workload.escalation_topic_arn)
        result = sns_topics(SCOPE)
        assert result.status == CheckStatus.FAIL
        assert f"{workload.escalation_topic_arn} does not exist" in result.evidence
        assert result.fix.startswith("aws sns create-topic --name demo-irflow-escalations --region us-east-1")
        assert result.problems == ["IRFLOW_ESCALATION_TOPIC_ARN: does not exist"]
    setting(monkeypatch, notify_topic_arn="")
    result = sns_topics(SCOPE)
    assert result.status == CheckStatus.FAIL and "IRFLOW_NOTIFY_TOPIC_ARN is not set" in result.evidence
