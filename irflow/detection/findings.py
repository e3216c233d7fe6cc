"""An alert becomes a finding in irflow's own model, so it goes through the same router as GuardDuty's:
the principal, access key, instance or bucket it concerns, and the matching events as its raw record."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from irflow.detection.events import get_path
from irflow.detection.rules import Alert
from irflow.models.finding import AffectedResource, Finding, FindingSource, ParsedFinding, Severity, canonical_json

# A score inside each GuardDuty band, so the finding's severity reads back as the rule's.
SCORES = {
    Severity.INFORMATIONAL: 0.5,
    Severity.LOW: 2.0,
    Severity.MEDIUM: 5.0,
    Severity.HIGH: 8.0,
    Severity.CRITICAL: 9.0,
}
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}([0-9a-f]{9})?$")


def event_time(event: dict[str, Any]) -> datetime:
    """When a CloudTrail record says the call was made (UTC); now, when it does not say."""
    text = event.get("eventTime")
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _family(finding_type: str) -> str:
    after = finding_type.split(":", 1)[1] if ":" in finding_type else finding_type
    return after.split("/", 1)[0]


def _instance_ids(event: dict[str, Any]) -> list[str]:
    request = event.get("requestParameters") or {}
    found = []
    if isinstance(request, dict):
        if isinstance(request.get("instanceId"), str):
            found.append(request["instanceId"])
        items = get_path(request, "instancesSet.items") or []
        found += [i.get("instanceId") for i in items if isinstance(i, dict) and isinstance(i.get("instanceId"), str)]
    return [i for i in found if _INSTANCE_ID.match(i)]


def _resource(alert: Alert, event: dict[str, Any]) -> AffectedResource:
    """What the finding is about: the bucket or instance an S3/EC2 rule names, else the caller."""
    family = _family(alert.finding_type)
    bucket = get_path(event, "requestParameters.bucketName")
    if family.startswith("S3") and isinstance(bucket, str) and bucket:
        return AffectedResource(resource_type="S3Bucket", resource_id=bucket, bucket_names=(bucket,))
    instances = _instance_ids(event)
    if family.startswith("EC2") and instances:
        return AffectedResource(resource_type="Instance", resource_id=instances[0], instance_id=instances[0])
    identity = event.get("userIdentity")
    identity = identity if isinstance(identity, dict) else {}  # a hostile record may put anything here

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    user_type = text(identity.get("type"))
    principal = text(identity.get("principalId"))
    if user_type == "AssumedRole":
        name = text(get_path(identity, "sessionContext.sessionIssuer.userName"))
    elif user_type == "Root":
        name = "Root"
    else:
        name = text(identity.get("userName"))
    session = principal.split(":", 1)[1] if isinstance(principal, str) and ":" in principal else ""
    return AffectedResource(
        resource_type="AccessKey",
        resource_id=text(identity.get("accessKeyId")) or name,
        access_key_id=text(identity.get("accessKeyId")),
        principal_id=principal,
        user_name=name,
        user_type=user_type,
        instance_id=session if _INSTANCE_ID.match(session) else None,
    )


def alert_to_finding(alert: Alert, received_at: datetime | None = None) -> ParsedFinding:
    events = [dict(e) for e in alert.events]
    first, last = events[0], events[-1]
    raw = {
        "source": FindingSource.IRFLOW_DETECTION.value,
        "rule_id": alert.rule_id,
        "title": alert.title,
        "finding_type": alert.finding_type,
        "severity": alert.severity.value,
        "events": events,
    }
    digest = hashlib.sha256(canonical_json(raw)).hexdigest()
    ident = hashlib.sha256(f"{alert.rule_id}|{first.get('eventID')}|{last.get('eventID')}".encode()).hexdigest()[:32]
    account = str(last.get("recipientAccountId") or get_path(last, "userIdentity.accountId") or "")
    finding = Finding(
        source=FindingSource.IRFLOW_DETECTION,
        id=ident,
        type=alert.finding_type,
        title=alert.title,
        description=alert.description or alert.title,
        account_id=account,
        region=str(last.get("awsRegion") or "us-east-1"),
        severity_score=SCORES[alert.severity],
        severity=alert.severity,
        created_at=received_at or datetime.now(UTC),
        updated_at=received_at or datetime.now(UTC),
        first_seen=event_time(first),
        last_seen=event_time(last),
        count=len(events),
        resource=_resource(alert, last),
        action_type="AWS_API_CALL",
        remote_ip=last.get("sourceIPAddress") if isinstance(last.get("sourceIPAddress"), str) else None,
        product="irflow detection",
        raw_sha256=digest,
    )
    return ParsedFinding(finding=finding, original_shape="irflow_detection_alert", raw=raw)
