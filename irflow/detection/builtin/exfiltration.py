"""Exfiltration (ATT&CK TA0010): snapshots, images and buckets shared with another account or with
everyone, snapshot exports and copies, and traffic mirroring.

irflow's own rules, written like a team's (docs/rules.md); their test events are in exfiltration.events.json.
"""

from __future__ import annotations

import json
from typing import Any

from irflow.detection.authoring import (
    EC2_SERVICE,
    RDS_SERVICE,
    S3_SERVICE,
    Event,
    Severity,
    allows_everyone,
    as_list,
    call_rule,
    event_account,
    policy_statements,
    request_parameter,
    rule,
    statement_principals,
    succeeded,
)


def _added_items(event: Event, attribute: str) -> list[dict[str, Any]]:
    block = request_parameter(event, attribute) or {}
    add = block.get("add") if isinstance(block, dict) else None
    items = add.get("items") if isinstance(add, dict) else None
    return [i for i in as_list(items) if isinstance(i, dict)]


_PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


_TRAFFIC_MIRROR_CALLS = {
    f"{verb}TrafficMirror{thing}"
    for verb in ("Create", "Delete", "Modify")
    for thing in ("Session", "Target", "Filter", "FilterRule", "FilterNetworkServices")
}


def _foreign_account_principal(policy: Any, account: str | None) -> bool:
    """An Allow statement names an AWS principal in another account ("*" is the public-policy rule's)."""
    for statement in policy_statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        for principal in statement_principals(statement):
            if principal.startswith("arn:aws:iam::"):
                owner = principal.split(":")[4]
            else:
                owner = principal if principal.isdigit() else None
            if owner and account and owner != account:
                return True
    return False


@rule(
    id="irflow.ec2.snapshot-shared",
    title="EBS snapshot shared publicly or with another account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:EC2/SnapshotShared",
    sources={EC2_SERVICE},
    names={"ModifySnapshotAttribute"},
)
def snapshot_shared(event: Event) -> bool:
    account = event_account(event)
    return succeeded(event) and any(
        i.get("group") == "all" or (i.get("userId") and i.get("userId") != account)
        for i in _added_items(event, "createVolumePermission")
    )


@rule(
    id="irflow.ec2.ami-shared",
    title="AMI shared publicly or with another account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:EC2/AMIShared",
    sources={EC2_SERVICE},
    names={"ModifyImageAttribute"},
)
def ami_shared(event: Event) -> bool:
    account = event_account(event)
    return succeeded(event) and any(
        i.get("group") == "all" or (i.get("userId") and i.get("userId") != account)
        for i in _added_items(event, "launchPermission")
    )


@rule(
    id="irflow.rds.snapshot-shared",
    title="RDS snapshot shared publicly or with another account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:RDS/SnapshotShared",
    sources={RDS_SERVICE},
    names={"ModifyDBSnapshotAttribute", "ModifyDBClusterSnapshotAttribute"},
)
def rds_snapshot_shared(event: Event) -> bool:
    return (
        succeeded(event)
        and request_parameter(event, "attributeName") == "restore"
        and bool(request_parameter(event, "valuesToAdd"))
    )


@rule(
    id="irflow.rds.made-public",
    title="RDS instance or cluster made publicly accessible",
    severity=Severity.HIGH,
    finding_type="Policy:RDS/PubliclyAccessible",
    sources={RDS_SERVICE},
    names={"ModifyDBInstance", "ModifyDBCluster", "RestoreDBInstanceFromDBSnapshot"},
)
def rds_public(event: Event) -> bool:
    return succeeded(event) and request_parameter(event, "publiclyAccessible") is True


call_rule(
    id="irflow.rds.snapshot-exported",
    title="RDS snapshot export to S3 started",
    severity=Severity.MEDIUM,
    finding_type="Exfiltration:RDS/SnapshotExport",
    sources={RDS_SERVICE},
    names={"StartExportTask"},
)


@rule(
    id="irflow.s3.bucket-policy-public",
    title="Resource policy grants access to everyone",
    severity=Severity.HIGH,
    finding_type="Policy:S3/BucketAnonymousAccessGranted",
    names={
        "PutBucketPolicy",
        "SetRepositoryPolicy",
        "PutKeyPolicy",
        "CreateElasticsearchDomain",
        "UpdateElasticsearchDomainConfig",
        "SetQueueAttributes",
        "CreateTopic",
        "SetTopicAttributes",
        "PutResourcePolicy",
        "AddPermission",
        "PutRepositoryPolicy",
    },
)
def resource_policy_public(event: Event) -> bool:
    if not succeeded(event):
        return False
    params = event.get("requestParameters") or {}
    if not isinstance(params, dict):
        return False
    candidates = [
        params.get("bucketPolicy"),
        params.get("policyText"),
        params.get("policy"),
        params.get("accessPolicies"),
        params.get("resourcePolicy"),
    ]
    attributes = params.get("attributes")
    if isinstance(attributes, dict):
        candidates.append(attributes.get("Policy"))
    if params.get("blockPublicPolicy") is True:
        return False
    return any(allows_everyone(s) for policy in candidates for s in policy_statements(policy))


@rule(
    id="irflow.s3.bucket-acl-public",
    title="S3 bucket ACL grants access to all users",
    severity=Severity.HIGH,
    finding_type="Policy:S3/BucketAnonymousAccessGranted",
    sources={S3_SERVICE},
    names={"PutBucketAcl", "PutObjectAcl"},
)
def bucket_acl_public(event: Event) -> bool:
    if not succeeded(event):
        return False
    params = event.get("requestParameters") or {}
    canned = " ".join(str(v) for v in as_list(params.get("x-amz-acl")))
    if "public-read" in canned or "authenticated-read" in canned:
        return True
    return any(g in json.dumps(params.get("AccessControlPolicy") or {}) for g in _PUBLIC_GRANTEES)


@rule(
    id="irflow.codebuild.project-public",
    title="CodeBuild project made public",
    severity=Severity.HIGH,
    finding_type="Policy:CodeBuild/ProjectPublic",
    sources={"codebuild.amazonaws.com"},
    names={"UpdateProjectVisibility"},
)
def codebuild_public(event: Event) -> bool:
    return succeeded(event) and request_parameter(event, "projectVisibility") == "PUBLIC_READ"


@rule(
    id="irflow.s3.copy-to-other-account",
    title="S3 object copied with a foreign KMS key or to another account's bucket",
    severity=Severity.MEDIUM,
    finding_type="Exfiltration:S3/CrossAccountCopy",
    sources={S3_SERVICE},
    names={"CopyObject"},
)
def copy_to_other_account(event: Event) -> bool:
    if not succeeded(event):
        return False
    key = str(request_parameter(event, "x-amz-server-side-encryption-aws-kms-key-id") or "")
    account = event_account(event)
    if key.startswith("arn:") and account and key.split(":")[4] != account:
        return True
    expected = request_parameter(event, "x-amz-expected-bucket-owner")
    return bool(expected and account and expected != account)


@rule(
    id="irflow.ec2.traffic-mirroring",
    title="VPC traffic mirroring configured (attempts included)",
    severity=Severity.MEDIUM,
    finding_type="Exfiltration:EC2/TrafficMirroring",
    sources={EC2_SERVICE},
    names=_TRAFFIC_MIRROR_CALLS,
)
def traffic_mirroring(event: Event) -> bool:
    return True


@rule(
    id="irflow.rds.snapshot-copied-cross-region",
    title="RDS snapshot copied from another Region",
    severity=Severity.LOW,
    finding_type="Exfiltration:RDS/SnapshotCopiedCrossRegion",
    sources={RDS_SERVICE},
    names={"CopyDBSnapshot", "CopyDBClusterSnapshot"},
)
def rds_snapshot_cross_region(event: Event) -> bool:
    source = request_parameter(event, "sourceRegion")
    return succeeded(event) and bool(source) and source != event.get("awsRegion")


@rule(
    id="irflow.s3.bucket-policy-foreign-account",
    title="S3 bucket policy grants access to another AWS account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:S3/BucketPolicyBackdoor",
    sources={S3_SERVICE},
    names={"PutBucketPolicy"},
)
def bucket_policy_foreign_account(event: Event) -> bool:
    return succeeded(event) and _foreign_account_principal(
        request_parameter(event, "bucketPolicy"), event_account(event)
    )
