"""Tampering with a contained resource: a CloudTrail call that may undo what a running incident contained.

A contained incident publishes handles for what it guards (`irflow.models.guarded`, the `IrflowGuarded` search
attribute). `tamper_handles` reads a CloudTrail record and gives the handles of what it changed, when it is one
of the calls that can undo a containment:

| call | handle |
|---|---|
| `UpdateAccessKey` to `Active` | the access key (only the key: the playbook deactivates that key alone) |
| `ModifyNetworkInterfaceAttribute` | the network interface |
| `ModifyInstanceAttribute` | the instance |
| `AuthorizeSecurityGroupIngress`, `AuthorizeSecurityGroupEgress`, `ModifySecurityGroupRules` | the group |
| `DeleteUserPolicy`, `PutUserPolicy` of irflow's revocation policy | the IAM user |
| `DeleteRolePolicy`, `PutRolePolicy` of irflow's revocation policy | the IAM role |
| `PutBucketPolicy`, `DeleteBucketPolicy`, `Delete`/`PutBucketPublicAccessBlock` | the bucket |
| `PutFunctionConcurrency`, `DeleteFunctionConcurrency` | the function (named, or from its ARN) |
| `ModifyDBInstance` | the DB instance |

The account of every handle is the record's `recipientAccountId`: the resource's account. A call that failed
counts only when it was refused (access denied): an attempt on a contained resource is worth the incident's
attention, a typo is not. `tamper_finding` makes the finding the listener hands to every incident guarding one
of the handles (`irflow.intake.tamper`); it carries the caller's ARN in `Finding.actor_arn`. Records of irflow's
own principals never get here: the detector skips them before anything else (`irflow.own_principals`).

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from irflow.detection.authoring import event_account
from irflow.detection.events import get_path
from irflow.detection.findings import SCORES, event_time
from irflow.models import guarded
from irflow.models.finding import (
    TAMPER_TYPE_PREFIX,
    AffectedResource,
    Finding,
    FindingSource,
    ParsedFinding,
    Severity,
    canonical_json,
)
from irflow.models.iam import REVOCATION_POLICY_PREFIX
from irflow.own_principals import caller_arn

TAMPER_SHAPE = "irflow_tamper_event"
TAMPER_RULE_ID = "irflow.tamper"
SEVERITY = Severity.HIGH
# Refused attempts count; other errors (a bad name, a missing policy) changed nothing and meant nothing.
_REFUSED = re.compile(r"^(Client\.)?(AccessDenied|UnauthorizedOperation|UnauthorizedAccess)")
# Lambda's CloudTrail names carry the API version: PutFunctionConcurrency20171031.
_API_VERSION = re.compile(r"\d{8}$")

Touched = list[tuple[str, str]]  # (guarded kind, value)


class TamperFinding(ParsedFinding):
    """A tamper finding and the handles of what it touched: the listener delivers it only to the running
    incidents that guard one of them; it never opens an incident."""

    handles: list[str]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _parameter(record: dict[str, Any], dotted: str) -> str:
    return _text(get_path(record.get("requestParameters") or {}, dotted))


def _access_key(record: dict[str, Any]) -> Touched:
    if _parameter(record, "status").lower() != "active":
        return []
    return [(guarded.ACCESS_KEY, _parameter(record, "accessKeyId"))]


def _security_group(record: dict[str, Any]) -> Touched:
    group = _parameter(record, "groupId") or _parameter(record, "ModifySecurityGroupRulesRequest.GroupId")
    return [(guarded.SECURITY_GROUP, group)]


def _revocation_policy(kind: str, name_parameter: str) -> Callable[[dict[str, Any]], Touched]:
    def touched(record: dict[str, Any]) -> Touched:
        if not _parameter(record, "policyName").startswith(REVOCATION_POLICY_PREFIX):
            return []
        return [(kind, _parameter(record, name_parameter))]

    return touched


def _after(marker: str, value: str) -> str:
    """The name in an ARN (`...:function:NAME[:qualifier]`, `...:db:NAME`), or the value when it is a name."""
    return value.split(marker, 1)[1].split(":", 1)[0] if marker in value else value


def _function(record: dict[str, Any]) -> Touched:
    return [(guarded.FUNCTION, _after(":function:", _parameter(record, "functionName")))]


def _db_instance(record: dict[str, Any]) -> Touched:
    return [(guarded.DB_INSTANCE, _after(":db:", _parameter(record, "dBInstanceIdentifier")))]


def _simple(kind: str, parameter: str) -> Callable[[dict[str, Any]], Touched]:
    return lambda record: [(kind, _parameter(record, parameter))]


_bucket = _simple(guarded.BUCKET, "bucketName")

# (event source, event name without an API version) → what the call touched.
CALLS: dict[tuple[str, str], Callable[[dict[str, Any]], Touched]] = {
    ("iam.amazonaws.com", "UpdateAccessKey"): _access_key,
    ("ec2.amazonaws.com", "ModifyNetworkInterfaceAttribute"): _simple(guarded.NETWORK_INTERFACE, "networkInterfaceId"),
    ("ec2.amazonaws.com", "ModifyInstanceAttribute"): _simple(guarded.INSTANCE, "instanceId"),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress"): _security_group,
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupEgress"): _security_group,
    ("ec2.amazonaws.com", "ModifySecurityGroupRules"): _security_group,
    ("iam.amazonaws.com", "DeleteUserPolicy"): _revocation_policy(guarded.IAM_USER, "userName"),
    ("iam.amazonaws.com", "PutUserPolicy"): _revocation_policy(guarded.IAM_USER, "userName"),
    ("iam.amazonaws.com", "DeleteRolePolicy"): _revocation_policy(guarded.IAM_ROLE, "roleName"),
    ("iam.amazonaws.com", "PutRolePolicy"): _revocation_policy(guarded.IAM_ROLE, "roleName"),
    ("s3.amazonaws.com", "PutBucketPolicy"): _bucket,
    ("s3.amazonaws.com", "DeleteBucketPolicy"): _bucket,
    ("s3.amazonaws.com", "DeletePublicAccessBlock"): _bucket,  # the API's name; CloudTrail writes the next one
    ("s3.amazonaws.com", "DeleteBucketPublicAccessBlock"): _bucket,
    ("s3.amazonaws.com", "PutBucketPublicAccessBlock"): _bucket,
    ("lambda.amazonaws.com", "PutFunctionConcurrency"): _function,
    ("lambda.amazonaws.com", "DeleteFunctionConcurrency"): _function,
    ("rds.amazonaws.com", "ModifyDBInstance"): _db_instance,
}


def call_name(record: dict[str, Any]) -> str:
    """The record's event name without the API version Lambda appends."""
    return _API_VERSION.sub("", _text(record.get("eventName")))


def _account(record: dict[str, Any]) -> str:
    return _text(event_account(record))


def _touched(record: dict[str, Any]) -> Touched:
    if not isinstance(record, dict):
        return []
    read = CALLS.get((_text(record.get("eventSource")), call_name(record)))
    error = _text(record.get("errorCode"))
    if read is None or (error and not _REFUSED.match(error)):
        return []
    # A value with a quote in it is no AWS name: it could only break the visibility query the handle goes into.
    return [(kind, value) for kind, value in read(record) if value and not set(value) & set("'\"\\")]


def _handles(record: dict[str, Any], touched: Touched) -> list[str]:
    account = _account(record) if touched else ""
    return list(dict.fromkeys(guarded.guard_handle(account, kind, value) for kind, value in touched)) if account else []


def tamper_handles(record: dict[str, Any]) -> list[str]:
    """The handles (`irflow.models.guarded`) of what a CloudTrail record changed, when it is a call that can undo
    a containment; [] for any other record. Who made the call is not judged here (see the module's doc)."""
    return _handles(record, _touched(record))


_RESOURCE_TYPES = {
    guarded.INSTANCE: "Instance",
    guarded.NETWORK_INTERFACE: "NetworkInterface",
    guarded.SECURITY_GROUP: "SecurityGroup",
    guarded.ACCESS_KEY: "AccessKey",
    guarded.IAM_USER: "IAMUser",
    guarded.IAM_ROLE: "IAMRole",
    guarded.BUCKET: "S3Bucket",
    guarded.FUNCTION: "Lambda",
    guarded.DB_INSTANCE: "RDSDBInstance",
}


def _resource(kind: str, value: str, record: dict[str, Any]) -> AffectedResource:
    fields: dict[str, Any] = {"resource_type": _RESOURCE_TYPES[kind], "resource_id": value}
    if kind == guarded.INSTANCE:
        fields["instance_id"] = value
    elif kind == guarded.ACCESS_KEY:
        user = _parameter(record, "userName")
        fields.update(access_key_id=value, user_name=user or None, user_type="IAMUser" if user else None)
    elif kind == guarded.IAM_USER:
        fields.update(user_name=value, user_type="IAMUser")
    elif kind == guarded.BUCKET:
        fields["bucket_names"] = (value,)
    return AffectedResource(**fields)


def actor_arn(record: dict[str, Any]) -> str | None:
    """Who made the call: `userIdentity.arn`, else the AWS service that made it on someone's behalf."""
    return caller_arn(record)


def tamper_finding(record: dict[str, Any], received_at: datetime | None = None) -> TamperFinding | None:
    """The finding a tamper call makes (HIGH, type `irflow:Tamper/<call>`, about the first thing it touched, its
    caller's ARN in `actor_arn`, the record as its raw evidence), or None when the record is no tamper call."""
    touched = _touched(record)
    handles = _handles(record, touched)
    if not handles:
        return None
    name = call_name(record)
    finding_type = f"{TAMPER_TYPE_PREFIX}{name}"
    kind, value = touched[0]
    error = _text(record.get("errorCode"))
    title = f"{name} on a {_RESOURCE_TYPES[kind]} irflow may have contained" + (f" (refused: {error})" if error else "")
    actor = actor_arn(record)
    raw = {
        "source": FindingSource.IRFLOW_DETECTION.value,
        "rule_id": TAMPER_RULE_ID,
        "title": title,
        "finding_type": finding_type,
        "severity": SEVERITY.value,
        "guarded": handles,
        "events": [dict(record)],
    }
    now = received_at or datetime.now(UTC)
    at = event_time(record)
    # One call is one finding, however often it arrives (EventBridge and the log file both carry it).
    event_id = _text(record.get("eventID")) or hashlib.sha256(canonical_json(record)).hexdigest()
    ident = hashlib.sha256(f"{TAMPER_RULE_ID}|{event_id}".encode())
    finding = Finding(
        source=FindingSource.IRFLOW_DETECTION,
        id=ident.hexdigest()[:32],
        type=finding_type,
        title=title,
        description=f"{title}, by {actor or 'an unknown caller'}: the incident re-checks its containment.",
        account_id=_account(record),
        region=_text(record.get("awsRegion")) or "us-east-1",
        severity_score=SCORES[SEVERITY],
        severity=SEVERITY,
        created_at=now,
        updated_at=now,
        first_seen=at,
        last_seen=at,
        resource=_resource(kind, value, record),
        action_type="AWS_API_CALL",
        remote_ip=_text(record.get("sourceIPAddress")) or None,
        product="irflow detection",
        raw_sha256=hashlib.sha256(canonical_json(raw)).hexdigest(),
        actor_arn=actor,
    )
    return TamperFinding(finding=finding, original_shape=TAMPER_SHAPE, raw=raw, handles=handles)
