"""Readiness of what the security account keeps for every incident, checked once per round: the evidence bucket
(versioning, Object Lock with a default retention, SSE-KMS, public access blocked), the KMS keys and the SNS
topics irflow is configured with."""

from __future__ import annotations

import json
from collections.abc import Callable
from shlex import quote

from botocore.exceptions import ClientError

from activities.aws import ACCESS_CODES, client, error_code
from activities.readiness_common import Verdict, failed, passed, readiness_check, unknown
from irflow.models.identifiers import region_of_arn
from irflow.models.readiness import ReadinessScope
from irflow.models.settings import IrflowSettings, get_settings

_NO_CONFIGURATION = {
    "ObjectLockConfigurationNotFoundError",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
}
PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _evidence_region(settings: IrflowSettings, scope: ReadinessScope) -> str:
    return settings.evidence_region or scope.region


def _bucket_check(
    scope: ReadinessScope,
    look: Callable[[object, str, IrflowSettings], Verdict],
    fix: Callable[[str, IrflowSettings], str],
) -> Verdict:
    """`look(s3, bucket, settings)` at the evidence bucket; an unset or missing bucket fails every bucket check."""
    settings = get_settings()
    bucket = settings.evidence_bucket
    if not bucket:
        return failed(
            "IRFLOW_EVIDENCE_BUCKET is not set: irflow captures no evidence",
            "create an S3 bucket with Object Lock (aws s3api create-bucket --bucket <name> "
            "--object-lock-enabled-for-bucket) and set IRFLOW_EVIDENCE_BUCKET to it",
        )
    s3 = client("s3", _evidence_region(settings, scope))
    try:
        return look(s3, bucket, settings)
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            return failed(
                f"evidence bucket {bucket} does not exist",
                f"aws s3api create-bucket --bucket {quote(bucket)} --object-lock-enabled-for-bucket --region "
                f"{quote(_evidence_region(settings, scope))} (or set IRFLOW_EVIDENCE_BUCKET to the bucket you have)",
            )
        if error_code(error) in _NO_CONFIGURATION:
            return failed(f"evidence bucket {bucket}: {error_code(error)}", fix(bucket, settings))
        raise


def _versioning_fix(bucket: str, settings: IrflowSettings) -> str:
    return f"aws s3api put-bucket-versioning --bucket {quote(bucket)} --versioning-configuration Status=Enabled"


def _object_lock_fix(bucket: str, settings: IrflowSettings) -> str:
    configuration = {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": settings.evidence_lock_mode, "Days": settings.evidence_retention_days}},
    }
    return (
        f"aws s3api put-object-lock-configuration --bucket {quote(bucket)} --object-lock-configuration "
        f"{quote(json.dumps(configuration))} (the bucket must be versioned)"
    )


def _encryption_fix(bucket: str, settings: IrflowSettings) -> str:
    key = settings.evidence_kms_key_id or "<your KMS key id>"
    default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    rules = {"Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": True}]}
    return (
        f"aws s3api put-bucket-encryption --bucket {quote(bucket)} --server-side-encryption-configuration "
        f"{quote(json.dumps(rules))}"
    )


def _public_access_fix(bucket: str, settings: IrflowSettings) -> str:
    flags = ",".join(f"{name}=true" for name in PUBLIC_ACCESS_BLOCK)
    return f"aws s3api put-public-access-block --bucket {quote(bucket)} --public-access-block-configuration {flags}"


def versioning(s3, bucket: str, settings: IrflowSettings) -> Verdict:
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
    if status != "Enabled":
        return failed(f"evidence bucket {bucket}: versioning is {status}", _versioning_fix(bucket, settings))
    return passed(f"evidence bucket {bucket}: versioning Enabled")


def object_lock(s3, bucket: str, settings: IrflowSettings) -> Verdict:
    configuration = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    fix = _object_lock_fix(bucket, settings)
    if configuration.get("ObjectLockEnabled") != "Enabled":
        return failed(f"evidence bucket {bucket}: Object Lock is not enabled", fix)
    retention = configuration.get("Rule", {}).get("DefaultRetention", {})
    days, years = retention.get("Days") or 0, retention.get("Years") or 0
    if not (days or years):
        return failed(
            f"evidence bucket {bucket}: Object Lock has no default retention: an object written without its own "
            "retention (a memory image the instance uploads) can be deleted",
            fix,
        )
    period = f"{days} days" if days else f"{years} years"
    mode = retention.get("Mode", "")
    if mode != settings.evidence_lock_mode:
        return failed(
            f"evidence bucket {bucket}: default retention is {mode} for {period}, not {settings.evidence_lock_mode} "
            "(IRFLOW_EVIDENCE_LOCK_MODE)",
            fix,
        )
    return passed(f"evidence bucket {bucket}: Object Lock, default retention {mode} for {period}")


def _key_arn(key: str, region: str) -> str | None:
    """The ARN of the key `key` names (an id, a key ARN, an alias name or an alias ARN); None when there is no such
    key."""
    try:
        return client("kms", region_of_arn(key) or region).describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    except ClientError as error:
        if error_code(error) != "NotFoundException":
            raise
        return None


def encryption(s3, bucket: str, settings: IrflowSettings, region: str) -> Verdict:
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"].get("Rules", [])
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
    algorithm, key = default.get("SSEAlgorithm", "none"), default.get("KMSMasterKeyID", "")
    fix = _encryption_fix(bucket, settings)
    if algorithm not in ("aws:kms", "aws:kms:dsse"):
        return failed(f"evidence bucket {bucket}: default encryption is {algorithm}, not SSE-KMS", fix)
    wanted = settings.evidence_kms_key_id
    if not wanted:
        return passed(f"evidence bucket {bucket}: default encryption {algorithm} with {key or 'the AWS managed key'}")
    if not key:
        return failed(
            f"evidence bucket {bucket}: default encryption {algorithm} uses the AWS managed key (aws/s3), not "
            f"IRFLOW_EVIDENCE_KMS_KEY_ID {wanted} (the quarantine profile may only use the configured key: a memory "
            "image upload fails)",
            fix,
        )
    wanted_arn, key_arn = _key_arn(wanted, region), _key_arn(key, region)
    if wanted_arn is None or wanted_arn != key_arn:
        found = key if key_arn == key else f"{key} ({key_arn or 'no key KMS knows'})"
        also = "" if wanted_arn else f" (which is no key in {region_of_arn(wanted) or region}: see kms.keys)"
        return failed(
            f"evidence bucket {bucket}: default encryption uses {found}, not IRFLOW_EVIDENCE_KMS_KEY_ID {wanted}"
            f"{also} (the quarantine profile may only use the configured key: a memory image upload fails)",
            fix,
        )
    return passed(f"evidence bucket {bucket}: default encryption {algorithm} with {key_arn}")


def public_access(s3, bucket: str, settings: IrflowSettings) -> Verdict:
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    off = [name for name in PUBLIC_ACCESS_BLOCK if not block.get(name)]
    if off:
        fix = _public_access_fix(bucket, settings)
        return failed(f"evidence bucket {bucket}: {', '.join(off)} not set", fix, problems=[f"{n} off" for n in off])
    return passed(f"evidence bucket {bucket}: all four public access block settings on")


@readiness_check(
    "evidence_bucket.versioning", "The evidence bucket is versioned", "s3:GetBucketVersioning", reach="global"
)
def evidence_bucket_versioning(scope: ReadinessScope) -> Verdict:
    """Every version of an evidence object is kept (Object Lock retains versions)."""
    return _bucket_check(scope, versioning, _versioning_fix)


@readiness_check(
    "evidence_bucket.object_lock",
    "The evidence bucket has Object Lock with a default retention",
    "s3:GetBucketObjectLockConfiguration",
    reach="global",
)
def evidence_bucket_object_lock(scope: ReadinessScope) -> Verdict:
    """Object Lock enabled, with a default retention in IRFLOW_EVIDENCE_LOCK_MODE (COMPLIANCE by default)."""
    return _bucket_check(scope, object_lock, _object_lock_fix)


@readiness_check(
    "evidence_bucket.encryption",
    "The evidence bucket encrypts with KMS by default",
    "s3:GetEncryptionConfiguration",
    "kms:DescribeKey",
    reach="global",
)
def evidence_bucket_encryption(scope: ReadinessScope) -> Verdict:
    """Default encryption SSE-KMS, with IRFLOW_EVIDENCE_KMS_KEY_ID when it is set: both keys resolved to their ARN
    (kms:DescribeKey), so a key id, a key ARN, an alias or an alias ARN name the same key alike."""
    region = _evidence_region(get_settings(), scope)
    return _bucket_check(scope, lambda s3, bucket, settings: encryption(s3, bucket, settings, region), _encryption_fix)


@readiness_check(
    "evidence_bucket.public_access",
    "The evidence bucket blocks public access",
    "s3:GetBucketPublicAccessBlock",
    reach="global",
)
def evidence_bucket_public_access(scope: ReadinessScope) -> Verdict:
    """The bucket's own public access block: all four settings true."""
    return _bucket_check(scope, public_access, _public_access_fix)


def configured_keys(settings: IrflowSettings) -> dict[str, str]:
    """The setting naming each KMS key irflow uses, and the key; unset ones left out."""
    keys = {
        "IRFLOW_EVIDENCE_KMS_KEY_ID": settings.evidence_kms_key_id,
        "IRFLOW_MANIFEST_SIGNING_KEY_ID": settings.manifest_signing_key_id,
        "IRFLOW_PAYLOAD_KMS_KEY_ID": settings.payload_kms_key_id,
    }
    return {name: key for name, key in keys.items() if key}


@readiness_check("kms.keys", "irflow's KMS keys are enabled", "kms:DescribeKey", reach="global")
def kms_keys(scope: ReadinessScope) -> Verdict:
    """The evidence key, the manifest signing key and the payload key, where configured: each KeyState Enabled."""
    settings = get_settings()
    keys = configured_keys(settings)
    if not keys:
        return passed("no customer managed key configured (evidence uses the AWS managed key)")
    findings, fixes, unreadable, problems = [], [], [], []
    for setting, key in keys.items():
        region = region_of_arn(key) or _evidence_region(settings, scope)
        where = f"--key-id {quote(key)} --region {quote(region)}"
        try:
            state = client("kms", region).describe_key(KeyId=key)["KeyMetadata"]["KeyState"]
        except ClientError as error:
            if error_code(error) in ACCESS_CODES:
                unreadable.append(f"{setting} {key}: {error_code(error)}")
                continue
            if error_code(error) != "NotFoundException":
                raise
            findings.append(f"{setting} {key}: not found in {region}")
            fixes.append(f"set {setting} to an existing key")
            problems.append(f"{setting}: not found")
            continue
        findings.append(f"{setting} {key}: {state}")
        if state == "Disabled":
            fixes.append(f"aws kms enable-key {where}")
        elif state == "PendingDeletion":
            fixes.append(f"aws kms cancel-key-deletion {where}; then aws kms enable-key {where}")
        elif state != "Enabled":
            fixes.append(f"make {key} usable (its state is {state}) or set {setting} to another key")
        if state != "Enabled":
            problems.append(f"{setting}: {state}")
    if fixes:
        return failed("; ".join(findings + unreadable), "; ".join(fixes), problems=problems)
    if unreadable:
        return unknown("; ".join(findings + unreadable))
    return passed("; ".join(findings))


@readiness_check("sns.topics", "The notification topics exist", "sns:GetTopicAttributes", reach="global")
def sns_topics(scope: ReadinessScope) -> Verdict:
    """IRFLOW_NOTIFY_TOPIC_ARN (required: nobody hears of an incident without it) and IRFLOW_ESCALATION_TOPIC_ARN
    (escalations go to the team's topic when it is unset) exist."""
    settings = get_settings()
    topics = {
        "IRFLOW_NOTIFY_TOPIC_ARN": settings.notify_topic_arn,
        "IRFLOW_ESCALATION_TOPIC_ARN": settings.escalation_topic_arn,
    }
    if not settings.notify_topic_arn:
        return failed(
            "IRFLOW_NOTIFY_TOPIC_ARN is not set: irflow notifies nobody",
            "aws sns create-topic --name irflow-incidents, subscribe the team, and set IRFLOW_NOTIFY_TOPIC_ARN to "
            "its ARN",
        )
    findings, fixes, problems = [], [], []
    for setting, topic in topics.items():
        if not topic:
            findings.append(f"{setting} not set (escalations go to the team's topic)")
            continue
        region = region_of_arn(topic) or _evidence_region(settings, scope)
        try:
            attributes = client("sns", region).get_topic_attributes(TopicArn=topic)["Attributes"]
        except ClientError as error:
            if error_code(error) != "NotFound":
                raise
            findings.append(f"{setting} {topic} does not exist")
            name = topic.rsplit(":", 1)[-1]
            fixes.append(f"aws sns create-topic --name {quote(name)} --region {quote(region)}, then subscribe")
            problems.append(f"{setting}: does not exist")
            continue
        subscribed = attributes.get("SubscriptionsConfirmed", "?")
        findings.append(f"{setting} {topic} exists ({subscribed} confirmed subscription(s))")
    if fixes:
        return failed("; ".join(findings), "; ".join(fixes), problems=problems)
    return passed("; ".join(findings))
