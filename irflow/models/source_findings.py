"""Closing the loop with AWS: what irflow tells an incident's source findings (GuardDuty feedback and archiving,
Security Hub's workflow status and note), and the console links its notifications carry. Pure: nothing here
calls AWS (activities.source_findings and activities.notify do)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from irflow.models.finding import Finding, FindingSource
from irflow.models.incident import NotifyInput

# The APIs' limits: UpdateFindingsFeedback and ArchiveFindings take at most 50 finding ids (botocore's model),
# BatchUpdateFindings at most 100 finding identifiers, and a note's Text and UpdatedBy at most 512 characters
# (the Security Hub API reference).
GUARDDUTY_BATCH = 50
SECURITY_HUB_BATCH = 100
NOTE_MAX = 512
UPDATED_BY = "irflow"

# arn:aws:guardduty:REGION:ACCOUNT:detector/DETECTOR/finding/ID: GuardDuty's finding ARN, and the ASFF Id of a
# GuardDuty finding in Security Hub.
GUARDDUTY_FINDING_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):guardduty:(?P<region>[^:]+):(?P<account>\d{12}):"
    r"detector/(?P<detector>[^/]+)/finding/(?P<finding>[^/]+)$"
)
_ARN_SERVICE = re.compile(r"^arn:[^:]+:(?P<service>[^:]+):")
# Security Hub's AWS products, `arn:<partition>:securityhub:<region>::product/aws/<name>`: by the service of the
# finding's Id (an ARN), else by the product's name.
_PRODUCT_BY_SERVICE = {
    "guardduty": "guardduty",
    "inspector": "inspector",
    "inspector2": "inspector",
    "macie": "macie",
    "macie2": "macie",
    "access-analyzer": "access-analyzer",
    "securityhub": "securityhub",
}
_PRODUCT_BY_NAME = {
    "guardduty": "guardduty",
    "inspector": "inspector",
    "macie": "macie",
    "iam access analyzer": "access-analyzer",
    "security hub": "securityhub",
}


class Verdict(StrEnum):
    """What the incident says of its findings: contained (Security Hub NOTIFIED), then at the end a false
    positive (GuardDuty NOT_USEFUL, Security Hub SUPPRESSED) or confirmed (USEFUL, RESOLVED)."""

    CONTAINED = "contained"
    FALSE_POSITIVE = "false-positive"
    CONFIRMED = "confirmed"


SECURITY_HUB_STATUS = {
    Verdict.CONTAINED: "NOTIFIED",
    Verdict.FALSE_POSITIVE: "SUPPRESSED",
    Verdict.CONFIRMED: "RESOLVED",
}
SECURITY_HUB_VERIFICATION = {Verdict.FALSE_POSITIVE: "FALSE_POSITIVE", Verdict.CONFIRMED: "TRUE_POSITIVE"}
GUARDDUTY_FEEDBACK = {Verdict.FALSE_POSITIVE: "NOT_USEFUL", Verdict.CONFIRMED: "USEFUL"}


class SourceFinding(BaseModel):
    """An AWS finding an incident answers, as its service names it: what its feedback and status updates need."""

    source: FindingSource
    id: str = Field(description="the finding's id at its source: GuardDuty's finding id, or Security Hub's Id")
    account_id: str
    region: str
    partition: str = "aws"
    product: str = ""
    guardduty_id: str | None = Field(
        default=None, description="GuardDuty's finding id: the finding's own, or the one a Security Hub Id names"
    )
    detector_id: str | None = Field(default=None, description="the GuardDuty detector the finding belongs to")
    product_arn: str | None = Field(
        default=None, description="Security Hub: the ProductArn that, with the Id, identifies the finding"
    )


class SourceFindingsUpdate(BaseModel):
    """Tell the incident's findings what came of them (activities.source_findings.update_source_findings)."""

    incident_id: str
    verdict: Verdict
    words: str = Field(default="", description="the outcome in words, for the note: 'rejected by alice: pentest'")
    findings: list[SourceFinding]


def not_from_aws(finding: Finding) -> str | None:
    """Why a finding has nothing in AWS to update, or None: irflow's own findings (tamper findings and its
    detection rules' alerts) live in no AWS service."""
    if finding.is_tamper:
        return "a tamper finding: irflow's own, from CloudTrail"
    if finding.source == FindingSource.IRFLOW_DETECTION:
        return "irflow's own detection: no AWS service holds it"
    return None


def _dig(raw: dict[str, Any] | None, *path: str) -> Any:
    value: Any = raw
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _detector_in_raw(raw: dict[str, Any] | None) -> str | None:
    """service.detectorId in each shape a GuardDuty finding comes in (event, camelCase, GetFindings)."""
    found = (
        _dig(raw, "detail", "service", "detectorId")
        or _dig(raw, "service", "detectorId")
        or _dig(raw, "Service", "DetectorId")
    )
    return found if isinstance(found, str) and found else None


def _product_arn(finding: Finding, raw: dict[str, Any] | None) -> str | None:
    """The ASFF ProductArn: the raw record's; else, for AWS's own products, made from the Id or the product name."""
    kept = _dig(raw, "ProductArn")
    if isinstance(kept, str) and kept:
        return kept
    service = _ARN_SERVICE.match(finding.id)
    name = _PRODUCT_BY_SERVICE.get(service.group("service")) if service else None
    name = name or _PRODUCT_BY_NAME.get(finding.product.strip().lower())
    return f"arn:{finding.partition}:securityhub:{finding.region}::product/aws/{name}" if name else None


def source_finding(finding: Finding, raw: dict[str, Any] | None = None) -> SourceFinding:
    """The finding as its AWS service names it; `raw` (its original record, when kept) fills in what the
    normalised finding does not keep: the detector of a GuardDuty finding without an ARN, the ProductArn."""
    named = GUARDDUTY_FINDING_ARN.match(finding.arn or finding.id)
    if finding.source == FindingSource.GUARDDUTY:
        guardduty_id = finding.id
        detector = named.group("detector") if named else _detector_in_raw(raw)
    else:
        guardduty_id = named.group("finding") if named else None
        detector = named.group("detector") if named else None
    return SourceFinding(
        source=finding.source,
        id=finding.id,
        account_id=named.group("account") if named else finding.account_id,
        region=named.group("region") if named else finding.region,
        partition=finding.partition,
        product=finding.product,
        guardduty_id=guardduty_id,
        detector_id=detector,
        product_arn=_product_arn(finding, raw) if finding.source == FindingSource.SECURITY_HUB else None,
    )


# --- the links notifications carry ---

CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-us-gov": "console.amazonaws-us-gov.com",
    "aws-cn": "console.amazonaws.cn",
}
ConsoleKind = Literal["instance", "user", "access-key", "role", "bucket", "function", "db-instance"]
_ROLE_SESSIONS = {"AssumedRole", "Role"}


class ConsoleResource(BaseModel):
    """The resource a notification links to in the AWS console."""

    kind: ConsoleKind
    name: str = Field(description="instance id, user, role, bucket, function or DB instance name; an access key id")
    user_name: str | None = Field(default=None, description="an access key's user")


class NotificationSubject(BaseModel):
    """What a notification is about, for its links: where the resource and the finding are, and the incident's
    workflow in the Temporal UI."""

    account_id: str
    region: str
    partition: str = "aws"
    resource: ConsoleResource | None = None
    finding: SourceFinding | None = None
    workflow_id: str = ""
    namespace: str = Field(default="", description="the incident's Temporal namespace; empty: TEMPORAL_NAMESPACE")


class LinkedNotifyInput(NotifyInput):
    """A notification with what its links are made from (activities.notify)."""

    about: NotificationSubject | None = None


def _last(resource_id: str | None, separator: str) -> str | None:
    """The name at the end of an ARN or path (`arn:aws:iam::1:user/ops/alice` → alice), or the id as it is."""
    return resource_id.rsplit(separator, 1)[-1] if resource_id else None


def console_resource(finding: Finding) -> ConsoleResource | None:
    """The console page of what the finding is about, when there is one."""
    r, kind = finding.resource, finding.resource.resource_type
    family = finding.type.split(":", 1)[-1].split("/", 1)[0]
    if r.bucket_names and (kind in ("S3Bucket", "S3Object") or family == "S3"):
        return ConsoleResource(kind="bucket", name=r.bucket_names[0])
    if r.instance_id and kind in ("Instance", "EC2Instance"):
        return ConsoleResource(kind="instance", name=r.instance_id)
    if kind == "AccessKey" and r.user_name and r.user_type != "Root":
        if r.user_type in _ROLE_SESSIONS:
            return ConsoleResource(kind="role", name=r.user_name)
        return ConsoleResource(kind="access-key", name=r.access_key_id or "", user_name=r.user_name)
    name = _last(r.resource_id, "/")
    if kind == "IAMUser" and name:
        return ConsoleResource(kind="user", name=name)
    if kind == "IAMRole" and name:
        return ConsoleResource(kind="role", name=name)
    if kind == "Lambda" and r.resource_id:
        function = r.resource_id.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in r.resource_id else name
        return ConsoleResource(kind="function", name=function or r.resource_id)
    if kind == "RDSDBInstance" and r.resource_id:
        return ConsoleResource(kind="db-instance", name=_last(r.resource_id, ":db:") or r.resource_id)
    return None


def _q(value: str) -> str:
    return quote(value, safe="")


def console_url(partition: str, path: str) -> str:
    """`path` on the partition's console (unknown partitions: the commercial console)."""
    return f"https://{CONSOLE_HOSTS.get(partition, CONSOLE_HOSTS['aws'])}{path}"


def resource_link(resource: ConsoleResource, region: str, partition: str = "aws") -> str:
    r, name, user = _q(region), _q(resource.name), _q(resource.user_name or "")
    paths = {
        "instance": f"/ec2/home?region={r}#InstanceDetails:instanceId={name}",
        "user": f"/iam/home?region={r}#/users/details/{name}",
        "access-key": f"/iam/home?region={r}#/users/details/{user}?section=security_credentials",
        "role": f"/iam/home?region={r}#/roles/details/{name}",
        "bucket": f"/s3/buckets/{name}?region={r}",
        "function": f"/lambda/home?region={r}#/functions/{name}",
        "db-instance": f"/rds/home?region={r}#database:id={name};is-cluster=false",
    }
    return console_url(partition, paths[resource.kind])


def finding_link(finding: SourceFinding) -> str | None:
    """The finding in its service's console: GuardDuty's findings page with the finding open, or Security Hub's
    findings filtered by its Id (Security Hub's own search syntax, encoded twice as its console does)."""
    r = _q(finding.region)
    if finding.source == FindingSource.GUARDDUTY and finding.guardduty_id:
        path = f"/guardduty/home?region={r}#/findings?macros=current&fId={_q(finding.guardduty_id)}"
    elif finding.source == FindingSource.SECURITY_HUB:
        search = _q("Id=" + _q("\\operator\\:EQUALS\\:" + finding.id))
        path = f"/securityhub/home?region={r}#/findings?search={search}"
    else:
        return None
    return console_url(finding.partition, path)


def incident_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The incident's workflow in the Temporal UI."""
    return f"{ui_url.rstrip('/')}/namespaces/{_q(namespace)}/workflows/{_q(workflow_id)}"
