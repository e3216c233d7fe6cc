"""Findings: GuardDuty in every shape it is seen in the wild, normalised to one `Finding`.

GuardDuty findings reach us in three shapes:

* the EventBridge event (``"detail-type": "GuardDuty Finding"``) whose ``detail`` is the finding;
* the bare finding, camelCase, as GuardDuty exports it to S3 or as it sits in ``detail``;
* boto3 ``GetFindings`` output, PascalCase, where ``AdditionalInfo`` is a JSON string.

All three become the same `Finding` (telling them apart, and GuardDuty's own vocabulary, is
`models.finding_shapes`). Anything else raises `FindingRejected` with a reason a human can act on;
nothing here touches the network.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from itertools import chain
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from irflow.models.finding_shapes import GuardDutyFinding, Resource, pascal_to_camel, shape_of

GUARDDUTY_DETAIL_TYPE = "GuardDuty Finding"
# The type of a tamper finding is this prefix and the CloudTrail call: irflow:Tamper/UpdateAccessKey.
TAMPER_TYPE_PREFIX = "irflow:Tamper/"


class FindingRejected(ValueError):
    """A record that is not a usable finding. `code` is stable for scripts, `reason` is for humans."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FindingSource(StrEnum):
    GUARDDUTY = "guardduty"
    SECURITY_HUB = "securityhub"
    IRFLOW_DETECTION = "irflow-detection"


class Severity(StrEnum):
    INFORMATIONAL = "INFORMATIONAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def from_guardduty_score(cls, score: float) -> Severity:
        # GuardDuty's published bands: 1.0-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0-10.0 critical.
        if score >= 9.0:
            return cls.CRITICAL
        if score >= 7.0:
            return cls.HIGH
        if score >= 4.0:
            return cls.MEDIUM
        return cls.LOW

    @classmethod
    def from_normalized(cls, normalized: float) -> Severity:
        # Security Hub's documented mapping of Severity.Normalized (0-100) to labels.
        if normalized >= 90:
            return cls.CRITICAL
        if normalized >= 70:
            return cls.HIGH
        if normalized >= 40:
            return cls.MEDIUM
        if normalized >= 1:
            return cls.LOW
        return cls.INFORMATIONAL


# --- irflow's normalised finding ---


# What GuardDuty tells about the database user of an RDS login finding (rdsDbUserDetails).
DB_USER_FIELDS = ("user", "database", "application", "authMethod", "ssl")


class AffectedResource(BaseModel):
    """What the finding is about, whatever the source called it."""

    model_config = ConfigDict(frozen=True)

    resource_type: str
    resource_id: str | None = None
    instance_id: str | None = None
    instance_profile_arn: str | None = None
    vpc_ids: tuple[str, ...] = ()
    access_key_id: str | None = None
    principal_id: str | None = None
    user_name: str | None = None
    user_type: str | None = None
    bucket_names: tuple[str, ...] = ()
    db_cluster_id: str | None = Field(default=None, description="the Aurora cluster an RDS finding's instance is in")
    db_user: dict[str, str] = Field(default_factory=dict, description="the database user an RDS finding names")
    tags: dict[str, str] = Field(default_factory=dict)
    account_id: str | None = Field(
        default=None, description="its own account, when an attack sequence says (else the finding's)"
    )
    region: str | None = Field(
        default=None, description="its own region, when an attack sequence says (else the finding's)"
    )
    refused: str | None = Field(
        default=None,
        description="why irflow will not act on a resource an attack sequence names (its ARN and its account or "
        "region disagree): only its kind is kept",
    )


class Finding(BaseModel):
    """One finding, normalised. Small on purpose: it travels in workflow inputs and signals."""

    model_config = ConfigDict(frozen=True)

    source: FindingSource
    id: str
    arn: str | None = None
    type: str
    title: str = ""
    description: str = ""
    account_id: str
    region: str
    partition: str = "aws"
    severity_score: float
    severity: Severity
    created_at: datetime
    updated_at: datetime
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    count: int = 1
    archived: bool = False
    sample: bool = False
    resource: AffectedResource
    sequence_resources: tuple[AffectedResource, ...] = Field(
        default=(),
        description="what an attack sequence names (service.detection.sequence.resources), checked, answerable "
        "kinds first, at most models.sequence_parsing.MAX_SEQUENCE_RESOURCES",
    )
    sequence_resources_named: int = Field(default=0, description="how many the sequence named, left-out ones too")
    sequence_parent: str | None = Field(
        default=None,
        description="the incident of the attack sequence that handed this finding over, about one resource it names "
        "(set by models.sequence_parsing.resource_finding only, never read from a record)",
    )
    action_type: str | None = None
    remote_ip: str | None = None
    product: str = "GuardDuty"
    compliance_status: str | None = Field(default=None, description="Security Hub control result (PASSED, FAILED...)")
    workflow_status: str | None = Field(
        default=None, description="Security Hub workflow (NEW, SUPPRESSED, RESOLVED...)"
    )
    note_updated_by: str | None = Field(
        default=None, description="who last wrote the Security Hub finding's note (irflow writes 'irflow')"
    )
    note_updated_at: datetime | None = Field(default=None, description="when the Security Hub note was written")
    posture: bool = Field(
        default=False, description="a configuration/compliance check (Security Hub controls, Inspector), not a threat"
    )
    raw_sha256: str = Field(description="SHA-256 of the original record, canonical JSON, for the evidence trail")
    actor_arn: str | None = Field(
        default=None,
        description="who made the call the finding reports, when irflow knows it: the CloudTrail caller's ARN of "
        "a tamper finding (irflow:Tamper/...). Absent in findings from GuardDuty, Security Hub and older payloads",
    )

    @property
    def observed_at(self) -> datetime:
        """When the activity was first seen, the start of every time-to-X metric."""
        return self.first_seen or self.created_at

    @property
    def is_tamper(self) -> bool:
        """A call by someone other than irflow that may undo a running incident's containment
        (`irflow.detection.tamper`): it only ever joins the incidents that guard what it touched. Only irflow's
        own detection makes one: a Security Hub finding that calls itself so is not."""
        return self.source == FindingSource.IRFLOW_DETECTION and self.type.startswith(TAMPER_TYPE_PREFIX)


class ParsedFinding(BaseModel):
    finding: Finding
    original_shape: str
    raw: dict[str, Any]


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


# Real findings and CloudTrail records nest at most about 15 levels. Far deeper is hostile: at about 1,000 the
# parser itself overflows Python's stack (RecursionError), and well below that the recursive code after it
# (json.dumps of the raw record, pydantic, pascal_to_camel, Temporal's payload converter) would.
MAX_JSON_DEPTH = 64
TOO_DEEP = ("too_deep", f"is nested deeper than {MAX_JSON_DEPTH} levels")
# `\ud800` without its pair decodes to a str that cannot be encoded: hashing, logging or sending it would fail.
LONE_SURROGATE = ("not_text", "holds an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape), which is not text")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTAINERS = (dict, list)


def nested_too_deeply(what: str) -> FindingRejected:
    return FindingRejected(TOO_DEEP[0], f"{what} {TOO_DEEP[1]}")


def _deeper_than(value: Any, limit: int) -> bool:
    # level by level, comparing exact types (json makes no subclasses): a third of the cost of a recursive walk
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children = chain.from_iterable([item.values() if type(item) is dict else item for item in level if item])
        level = [child for child in children if type(child) in _CONTAINERS]
    return False


def json_problem(value: Any, text: str, start: int = 0, end: int | None = None) -> tuple[str, str] | None:
    """What makes `value`, decoded from `text[start:end]`, unfit to pass on: (code, reason without its subject),
    or None. Nesting deeper than MAX_JSON_DEPTH, or a lone surrogate. Both are found cheaply in the text first:
    text with no more brackets than the limit cannot nest deeper (counting is ten times cheaper than the parse,
    only text with more is walked), and only text with a `\\ud800`-`\\udfff` escape can hold a lone surrogate
    (most has no backslash at all, and looking for one is cheaper still)."""
    end = len(text) if end is None else end
    brackets = text.count("[", start, end) + text.count("{", start, end)
    if brackets > MAX_JSON_DEPTH and isinstance(value, dict | list) and _deeper_than(value, MAX_JSON_DEPTH):
        return TOO_DEEP
    if text.find("\\", start, end) >= 0 and _SURROGATE_ESCAPE.search(text, start, end):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return LONE_SURROGATE
    return None


def loads_json(text: str, what: str) -> Any:
    """`json.loads` of hostile text: a JSONDecodeError when it is not JSON; FindingRejected (never a
    RecursionError) when it nests deeper than MAX_JSON_DEPTH ('too_deep') or holds a lone surrogate
    ('not_text'). `what` names the text in the reason."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise nested_too_deeply(what) from None
    problem = json_problem(value, text)
    if problem:
        raise FindingRejected(problem[0], f"{what} {problem[1]}")
    return value


def pack_raw(raw: dict[str, Any]) -> str:
    """The original record, gzip-compressed and base64-encoded: findings are repetitive JSON (a 300 KB
    attack sequence packs to a few tens of KB), so the evidence can travel inside Temporal payloads."""
    return base64.b64encode(gzip.compress(canonical_json(raw), mtime=0)).decode("ascii")


def unpack_raw(packed: str) -> dict[str, Any]:
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "finding"
        parts.append(f"{where}: {item['msg'].lower()}")
    more = f" (+{error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return "; ".join(parts) + more


def _remote_ip(action: dict[str, Any] | None) -> str | None:
    if not action:
        return None
    for value in action.values():
        if isinstance(value, dict):
            details = value.get("remoteIpDetails")
            if isinstance(details, dict) and details.get("ipAddressV4"):
                return details["ipAddressV4"]
    return None


def _affected_resource(resource: Resource) -> AffectedResource:
    kind = resource.resource_type
    if resource.instance_details is not None and kind in ("Instance", "EC2Instance"):
        d = resource.instance_details
        return AffectedResource(
            resource_type=kind,
            resource_id=d.instance_id,
            instance_id=d.instance_id,
            instance_profile_arn=d.iam_instance_profile.arn if d.iam_instance_profile else None,
            vpc_ids=tuple(sorted({n.vpc_id for n in d.network_interfaces if n.vpc_id})),
            tags={t.key: t.value or "" for t in d.tags},
        )
    if resource.access_key_details is not None and kind == "AccessKey":
        k = resource.access_key_details
        return AffectedResource(
            resource_type=kind,
            resource_id=k.access_key_id,
            access_key_id=k.access_key_id,
            principal_id=k.principal_id,
            user_name=k.user_name,
            user_type=k.user_type,
            # InstanceCredentialExfiltration findings also name the instance whose role credentials left it.
            instance_id=resource.instance_details.instance_id if resource.instance_details else None,
            instance_profile_arn=(
                resource.instance_details.iam_instance_profile.arn
                if resource.instance_details and resource.instance_details.iam_instance_profile
                else None
            ),
            # S3 findings from management events name the caller's key and the bucket acted on.
            bucket_names=tuple(b.name for b in resource.s3_bucket_details if b.name),
        )
    if kind in ("S3Bucket", "S3Object"):
        names = tuple(b.name for b in resource.s3_bucket_details if b.name)
        return AffectedResource(resource_type=kind, resource_id=names[0] if names else None, bucket_names=names)
    if resource.rds_db_instance_details:
        rds, user = resource.rds_db_instance_details, resource.rds_db_user_details or {}
        return AffectedResource(
            resource_type=kind,
            resource_id=rds.get("dbInstanceIdentifier"),
            db_cluster_id=rds.get("dbClusterIdentifier"),
            db_user={k: str(user[k]) for k in DB_USER_FIELDS if user.get(k) is not None},
        )
    for details in (
        resource.eks_cluster_details,
        resource.lambda_details,
        resource.ecs_cluster_details,
        resource.container_details,
    ):
        if details:
            ident = (
                details.get("name")
                or details.get("dbInstanceIdentifier")
                or details.get("functionName")
                or details.get("id")
            )
            return AffectedResource(resource_type=kind, resource_id=ident)
    instance_id = resource.instance_details.instance_id if resource.instance_details else None
    return AffectedResource(resource_type=kind, resource_id=instance_id, instance_id=instance_id)


def parse_guardduty(record: Any) -> ParsedFinding:
    """Parse one GuardDuty record in any of its three shapes, or raise `FindingRejected`."""
    if not isinstance(record, dict):
        raise FindingRejected("not_an_object", f"expected a JSON object, got {type(record).__name__}")
    shape = shape_of(record)
    if shape == "eventbridge_envelope":
        detail_type = record.get("detail-type")
        if detail_type != GUARDDUTY_DETAIL_TYPE:
            raise FindingRejected(
                "unsupported_event", f"event detail-type {detail_type!r} is not {GUARDDUTY_DETAIL_TYPE!r}"
            )
        detail = record.get("detail")
        if not isinstance(detail, dict):
            raise FindingRejected("invalid_event", "GuardDuty event has no finding in 'detail'")
        body = detail
    elif shape == "getfindings_pascalcase":
        body = pascal_to_camel(record)
    elif shape == "finding_camelcase":
        body = record
    elif shape == "asff":
        raise FindingRejected("unsupported_format", "this is a Security Hub (ASFF) finding, not a GuardDuty finding")
    else:
        keys = ", ".join(sorted(record)[:6]) or "none"
        raise FindingRejected(
            "not_a_finding",
            "not a GuardDuty finding: expected an EventBridge 'GuardDuty Finding' event, a finding, "
            f"or GetFindings output (top-level keys: {keys})",
        )

    if not body.get("resource"):
        raise FindingRejected(
            "no_resource",
            f"finding {body.get('id', '?')} names no resource, so there is nothing to respond to",
        )
    try:
        gd = GuardDutyFinding.model_validate(body)
    except ValidationError as error:
        raise FindingRejected(
            "invalid_finding", f"finding {body.get('id', '?')}: {describe_validation_error(error)}"
        ) from None
    except RecursionError:  # GetFindings' AdditionalInfo is JSON text, decoded by the model's validator
        raise nested_too_deeply(f"finding {body.get('id', '?')}: service.additionalInfo") from None

    arn_region = gd.arn.split(":")[3] if gd.arn and gd.arn.count(":") >= 5 else ""
    if arn_region and arn_region != gd.region:
        raise FindingRejected(
            "region_mismatch",
            f"finding {gd.id} says region {gd.region} but its ARN says {arn_region}: "
            "irflow will not guess where the resource is",
        )
    from irflow.models.sequence_parsing import sequence_resources  # it builds on AffectedResource, above

    additional = gd.service.additional_info or {}
    named, named_count = sequence_resources(gd.service.detection, gd.partition)
    sample = additional.get("sample") in (True, "true", "True")
    try:  # the model checks the record's own fields; these, read leniently from dicts, may be of any type
        finding = Finding(
            source=FindingSource.GUARDDUTY,
            id=gd.id,
            arn=gd.arn,
            type=gd.type,
            title=gd.title,
            description=gd.description,
            account_id=gd.account_id,
            region=gd.region,
            partition=gd.partition,
            severity_score=gd.severity,
            severity=Severity.from_guardduty_score(gd.severity),
            created_at=to_utc(gd.created_at),
            updated_at=to_utc(gd.updated_at),
            first_seen=to_utc(gd.service.event_first_seen),
            last_seen=to_utc(gd.service.event_last_seen),
            count=gd.service.count,
            archived=gd.service.archived,
            sample=sample,
            resource=_affected_resource(gd.resource),
            sequence_resources=named,
            sequence_resources_named=named_count,
            action_type=(gd.service.action or {}).get("actionType"),
            remote_ip=_remote_ip(gd.service.action),
            raw_sha256=hashlib.sha256(canonical_json(record)).hexdigest(),
        )
    except ValidationError as error:
        raise FindingRejected("invalid_finding", f"finding {gd.id}: {describe_validation_error(error)}") from None
    return ParsedFinding(finding=finding, original_shape=shape, raw=record)
