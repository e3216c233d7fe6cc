"""Security Hub findings (AWS Security Finding Format, ASFF), normalised to the same `Finding`.

One ASFF finding may list several resources; the one irflow can act on (an instance, an access key,
a bucket...) is the finding's resource, the others stay in the raw record for the evidence trail.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from irflow.models.finding import (
    AffectedResource,
    Finding,
    FindingRejected,
    FindingSource,
    ParsedFinding,
    Severity,
    canonical_json,
    describe_validation_error,
    to_utc,
)

# ASFF resource types, mapped to GuardDuty's resource vocabulary where the two name the same thing, so
# that routing has one vocabulary. The order is the preference when a finding lists several.
_RESOURCE_TYPES = {
    "AwsEc2Instance": "Instance",
    "AwsIamAccessKey": "AccessKey",
    "AwsS3Bucket": "S3Bucket",
    "AwsLambdaFunction": "Lambda",
    "AwsRdsDbInstance": "RDSDBInstance",
    "AwsEksCluster": "EKSCluster",
    "AwsEcsCluster": "ECSCluster",
    "AwsIamUser": "IAMUser",
    "AwsIamRole": "IAMRole",
}
# ASFF type namespaces for configuration and vulnerability checks rather than threat detections.
_POSTURE_TYPE_PREFIXES = ("Software and Configuration Checks/", "Software & Configuration Checks/")
_INSTANCE_ID = re.compile(r"instance/(i-[0-9a-f]+)$")
_ARN_REGION = re.compile(r"^arn:[^:]+:[^:]*:([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d):")
_TIMESTAMP = TypeAdapter(datetime)


class _AsffModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class _Severity(_AsffModel):
    Label: str | None = None
    Normalized: float | None = None
    Product: float | None = None


class _Resource(_AsffModel):
    Type: str
    Id: str
    Region: str | None = None
    Partition: str | None = None
    Tags: dict[str, str] = Field(default_factory=dict)
    Details: dict[str, Any] = Field(default_factory=dict)


class _AsffFinding(_AsffModel):
    SchemaVersion: str
    Id: str
    ProductArn: str
    GeneratorId: str = ""
    AwsAccountId: str
    Types: list[str] = Field(default_factory=list)
    CreatedAt: datetime
    UpdatedAt: datetime
    FirstObservedAt: datetime | None = None
    LastObservedAt: datetime | None = None
    Severity: _Severity
    Title: str = ""
    Description: str = ""
    Resources: list[_Resource] = Field(min_length=1)
    Region: str | None = None
    ProductFields: dict[str, str] = Field(default_factory=dict)
    RecordState: str = "ACTIVE"
    Workflow: dict[str, Any] = Field(default_factory=dict)
    WorkflowState: str | None = None
    Compliance: dict[str, Any] = Field(default_factory=dict)
    ProductName: str | None = None
    Note: Any = None  # read by _note, leniently


def _severity(severity: _Severity, product_fields: dict[str, str]) -> tuple[Severity, float]:
    label = severity.Label or product_fields.get("aws/securityhub/SeverityLabel")
    normalized = severity.Normalized
    if label:
        try:
            resolved = Severity(label.upper())
        except ValueError:
            raise FindingRejected("invalid_finding", f"unknown Security Hub severity label {label!r}") from None
        # Without Normalized, take the bottom of the label's band (Security Hub's documented defaults).
        default = {"INFORMATIONAL": 0, "LOW": 1, "MEDIUM": 40, "HIGH": 70, "CRITICAL": 90}[resolved]
        return resolved, (normalized if normalized is not None else default) / 10
    if normalized is None:
        raise FindingRejected("invalid_finding", "Severity has neither Label nor Normalized")
    return Severity.from_normalized(normalized), normalized / 10


def _guardduty_type(types: list[str]) -> str | None:
    """GuardDuty findings in ASFF carry their type as the last segment of Types, with '/' made '-'."""
    for asff_type in types:
        last = asff_type.rsplit("/", 1)[-1]
        if ":" in last:
            purpose, rest = last.split(":", 1)
            return f"{purpose}:{rest.replace('-', '/', 1)}"
    return None


def _note(note: Any) -> tuple[str | None, datetime | None]:
    """Who last wrote the finding's note and when (BatchUpdateFindings sets both). Read leniently: a note is no
    reason to refuse a finding, and one that does not clearly say both is as good as none to irflow.intake.filters
    (it keeps a RESOLVED finding suppressed)."""
    if not isinstance(note, dict):
        return None, None
    by = note.get("UpdatedBy")
    try:
        at = to_utc(_TIMESTAMP.validate_python(note.get("UpdatedAt")))
    except ValidationError:
        at = None
    return (by if isinstance(by, str) and by else None), at


def _primary_resource(resources: list[_Resource]) -> _Resource:
    ranked = sorted(resources, key=lambda r: list(_RESOURCE_TYPES).index(r.Type) if r.Type in _RESOURCE_TYPES else 99)
    return ranked[0]


def _affected(resource: _Resource) -> AffectedResource:
    kind = _RESOURCE_TYPES.get(resource.Type, resource.Type)
    details = resource.Details.get(resource.Type) if isinstance(resource.Details, dict) else None
    details = details if isinstance(details, dict) else {}
    if kind == "Instance":
        match = _INSTANCE_ID.search(resource.Id)
        instance_id = match.group(1) if match else (resource.Id if resource.Id.startswith("i-") else None)
        return AffectedResource(
            resource_type=kind,
            resource_id=instance_id,
            instance_id=instance_id,
            instance_profile_arn=details.get("IamInstanceProfileArn"),
            vpc_ids=tuple(v for v in (details.get("VpcId"),) if v),
            tags=resource.Tags,
        )
    if kind == "AccessKey":
        key = resource.Id.rsplit(":", 1)[-1]
        key = None if key in ("null", "") else key
        return AffectedResource(
            resource_type=kind,
            resource_id=key,
            access_key_id=key,
            principal_id=details.get("PrincipalId"),
            user_name=details.get("PrincipalName") or details.get("UserName"),
            user_type=details.get("PrincipalType"),
            tags=resource.Tags,
        )
    if kind == "RDSDBInstance":
        return AffectedResource(
            resource_type=kind,
            resource_id=resource.Id,
            db_cluster_id=details.get("DbClusterIdentifier"),
            tags=resource.Tags,
        )
    if kind == "S3Bucket":
        name = resource.Id.rsplit(":", 1)[-1]
        return AffectedResource(resource_type=kind, resource_id=name, bucket_names=(name,), tags=resource.Tags)
    return AffectedResource(resource_type=kind, resource_id=resource.Id, tags=resource.Tags)


def parse_asff(record: Any) -> ParsedFinding:
    """Parse one ASFF finding (as Security Hub stores it, in events or in GetFindings output)."""
    if not isinstance(record, dict):
        raise FindingRejected("not_an_object", f"expected an ASFF finding object, got {type(record).__name__}")
    if not record.get("Resources"):
        raise FindingRejected(
            "no_resource",
            f"Security Hub finding {record.get('Id', '?')} names no resource, so there is nothing to respond to",
        )
    try:
        asff = _AsffFinding.model_validate(record)
    except ValidationError as error:
        raise FindingRejected(
            "invalid_finding", f"Security Hub finding {record.get('Id', '?')}: {describe_validation_error(error)}"
        ) from None
    severity, score = _severity(asff.Severity, asff.ProductFields)
    resource = _primary_resource(asff.Resources)
    product_region = _ARN_REGION.match(asff.ProductArn)
    region = asff.Region or resource.Region or (product_region.group(1) if product_region else "")
    if not region:
        raise FindingRejected("invalid_finding", f"Security Hub finding {asff.Id} names no region")
    resource_region = _ARN_REGION.match(resource.Id)
    if resource_region and resource_region.group(1) and resource_region.group(1) != region:
        raise FindingRejected(
            "region_mismatch",
            f"Security Hub finding {asff.Id} says region {region} but its resource {resource.Id} is in "
            f"{resource_region.group(1)}: irflow will not guess where the resource is",
        )
    product = (
        asff.ProductName or asff.ProductFields.get("aws/securityhub/ProductName") or asff.ProductArn.rsplit("/", 1)[-1]
    )
    finding_type = _guardduty_type(asff.Types) if "guardduty" in asff.ProductArn.lower() else None
    workflow_status = asff.Workflow.get("Status") or asff.WorkflowState
    note_updated_by, note_updated_at = _note(asff.Note)
    try:
        finding = Finding(
            source=FindingSource.SECURITY_HUB,
            id=asff.Id,
            arn=asff.Id if asff.Id.startswith("arn:") else None,
            type=finding_type or (asff.Types[0] if asff.Types else asff.GeneratorId or asff.Title),
            title=asff.Title,
            description=asff.Description,
            account_id=asff.AwsAccountId,
            region=region,
            partition=resource.Partition or "aws",
            severity_score=score,
            severity=severity,
            created_at=to_utc(asff.CreatedAt),
            updated_at=to_utc(asff.UpdatedAt),
            first_seen=to_utc(asff.FirstObservedAt),
            last_seen=to_utc(asff.LastObservedAt),
            count=int(asff.ProductFields.get("count", "1") or 1)
            if asff.ProductFields.get("count", "1").isdigit()
            else 1,
            archived=asff.RecordState.upper() == "ARCHIVED",
            sample=asff.ProductFields.get("sample", "").lower() == "true"
            or '"sample":true' in asff.ProductFields.get("additionalInfo", "").replace(" ", ""),
            resource=_affected(resource),
            action_type=asff.ProductFields.get("action/actionType"),
            remote_ip=next(
                (v for k, v in asff.ProductFields.items() if k.endswith("remoteIpDetails/ipAddressV4")), None
            ),
            product=product,
            compliance_status=asff.Compliance.get("Status"),
            posture=bool(asff.Compliance)
            or (bool(asff.Types) and all(t.startswith(_POSTURE_TYPE_PREFIXES) for t in asff.Types)),
            workflow_status=workflow_status,
            note_updated_by=note_updated_by,
            note_updated_at=note_updated_at,
            raw_sha256=hashlib.sha256(canonical_json(record)).hexdigest(),
        )
    except ValidationError as error:  # odd values in loosely read fields: a refusal, not a crash
        raise FindingRejected(
            "invalid_finding", f"Security Hub finding {asff.Id}: {describe_validation_error(error)}"
        ) from None
    return ParsedFinding(finding=finding, original_shape="asff", raw=record)
