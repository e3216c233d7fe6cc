"""Impact (ATT&CK TA0040): recovery removed (versioning, backups, replication, deletion protection),
keys and domains lost, ransom notes and SSE-C rewrites, costly compute and models switched on.

irflow's own rules, written like a team's (docs/rules.md); their test events are in impact.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    ACCOUNT_SERVICE,
    BEDROCK_SERVICE,
    EC2_SERVICE,
    KMS_SERVICE,
    RDS_SERVICE,
    S3_SERVICE,
    Event,
    Severity,
    call_rule,
    made_by_aws_service,
    request_parameter,
    rule,
    succeeded,
)

# GPU, accelerator and very large memory families: what a cryptominer or a stolen-compute buyer launches.
_UNUSUAL_FAMILIES = ("p2", "p3", "p4", "p5", "g3", "g4", "g5", "g6", "x1", "x2", "inf", "trn", "dl1", "f1", "u-")


call_rule(
    id="irflow.s3.bucket-replication-deleted",
    title="S3 bucket replication removed",
    severity=Severity.LOW,
    finding_type="Impact:S3/BucketReplicationDeleted",
    sources={S3_SERVICE},
    names={"DeleteBucketReplication"},
)


@rule(
    id="irflow.s3.versioning-or-mfa-delete-disabled",
    title="S3 versioning suspended or MFA delete disabled",
    severity=Severity.MEDIUM,
    finding_type="Impact:S3/VersioningSuspended",
    sources={S3_SERVICE},
    names={"PutBucketVersioning"},
)
def versioning_disabled(event: Event) -> bool:
    config = request_parameter(event, "VersioningConfiguration")
    if not succeeded(event) or not isinstance(config, dict):
        return False
    return config.get("Status") in ("Suspended", "Disabled") or config.get("MfaDelete") == "Disabled"


@rule(
    id="irflow.ec2.unusual-instance-launch",
    title="GPU or very large EC2 instances launched (or attempted)",
    severity=Severity.MEDIUM,
    finding_type="Impact:EC2/UnusualInstanceLaunch",
    sources={EC2_SERVICE},
    names={"RunInstances"},
)
def unusual_instance(event: Event) -> bool:
    instance_type = str(request_parameter(event, "instanceType") or "")
    return instance_type.startswith(_UNUSUAL_FAMILIES) and not made_by_aws_service(event)


call_rule(
    id="irflow.bedrock.model-access-enabled",
    title="Bedrock foundation model access enabled or invoked after enabling",
    severity=Severity.MEDIUM,
    finding_type="Impact:IAMUser/BedrockModelAccess",
    sources={BEDROCK_SERVICE},
    names={"PutUseCaseForModelAccess", "CreateFoundationModelAgreement", "PutFoundationModelEntitlement"},
)


@rule(
    id="irflow.rds.deletion-protection-disabled",
    title="RDS deletion protection disabled",
    severity=Severity.MEDIUM,
    finding_type="Impact:RDS/DeletionProtectionDisabled",
    sources={RDS_SERVICE},
    names={"ModifyDBInstance", "ModifyDBCluster"},
)
def rds_deletion_protection(event: Event) -> bool:
    return succeeded(event) and request_parameter(event, "deletionProtection") is False


call_rule(
    id="irflow.rds.automated-backup-deleted",
    title="RDS automated backup deleted",
    severity=Severity.MEDIUM,
    finding_type="Impact:RDS/AutomatedBackupDeleted",
    sources={RDS_SERVICE},
    names={"DeleteDBInstanceAutomatedBackup", "DeleteDBClusterAutomatedBackup"},
)


call_rule(
    id="irflow.kms.key-disabled-or-deleted",
    title="KMS key scheduled for deletion or disabled",
    severity=Severity.HIGH,
    finding_type="Impact:KMS/KeyDeletion",
    sources={KMS_SERVICE},
    names={"ScheduleKeyDeletion", "DisableKey"},
    by_aws_services=False,
)


call_rule(
    id="irflow.route53.domain-transfer",
    title="Route 53 domain transferred out or transfer lock removed",
    severity=Severity.HIGH,
    finding_type="Impact:Route53/DomainTransfer",
    sources={"route53domains.amazonaws.com"},
    names={"TransferDomainToAnotherAwsAccount", "DisableDomainTransferLock", "TransferDomain"},
)


@rule(
    id="irflow.s3.ransom-note",
    title="Possible ransom note uploaded to S3",
    severity=Severity.HIGH,
    finding_type="Impact:S3/RansomNote",
    sources={S3_SERVICE},
    names={"PutObject"},
)
def ransom_note(event: Event) -> bool:
    key = str(request_parameter(event, "key") or "").lower()
    return succeeded(event) and any(
        w in key for w in ("ransom", "decrypt", "restore_files", "readme_to", "how_to_recover", "recover_files")
    )


@rule(
    id="irflow.s3.sse-c-copy",
    title="S3 object rewritten with a customer-provided encryption key (SSE-C)",
    severity=Severity.HIGH,
    finding_type="Impact:S3/RansomwareClientSideEncryption",
    sources={S3_SERVICE},
    names={"CopyObject", "PutObject"},
)
def sse_c_copy(event: Event) -> bool:
    return succeeded(event) and bool(request_parameter(event, "x-amz-server-side-encryption-customer-algorithm"))


call_rule(
    id="irflow.account.region-enabled",
    title="AWS Region enabled for the account",
    severity=Severity.LOW,
    finding_type="Impact:IAMUser/RegionEnabled",
    sources={ACCOUNT_SERVICE},
    names={"EnableRegion"},
)
