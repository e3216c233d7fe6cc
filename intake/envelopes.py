"""Unwrapping whatever carries findings to irflow, down to the findings themselves.

A queue message or a file may hold: an EventBridge `GuardDuty Finding` event; an EventBridge
`Security Hub Findings - Imported` or `- Custom Action` event with one or more ASFF findings; either of
those inside an SNS notification; a raw GuardDuty finding (bare or GetFindings shape); a raw ASFF
finding; GetFindings output of either service; or a list of any of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from models.asff import parse_asff
from models.finding import GUARDDUTY_DETAIL_TYPE, FindingRejected, ParsedFinding, parse_guardduty

SECURITY_HUB_DETAIL_TYPES = ("Security Hub Findings - Imported", "Security Hub Findings - Custom Action")
CLOUDTRAIL_DETAIL_TYPES = ("AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail")
Unwrapped = list[ParsedFinding | FindingRejected]
# Turns one CloudTrail record into the findings its rules raise (none, mostly): detection.Detector.
Detect = Callable[[dict[str, Any]], list[ParsedFinding]]


def _is_sns_notification(record: dict[str, Any]) -> bool:
    return record.get("Type") == "Notification" and isinstance(record.get("Message"), str) and "TopicArn" in record


def _is_asff(record: dict[str, Any]) -> bool:
    return "AwsAccountId" in record and "ProductArn" in record


def _from_event(event: dict[str, Any], detect: Detect | None) -> Unwrapped:
    detail_type = event.get("detail-type")
    if detail_type in CLOUDTRAIL_DETAIL_TYPES and detect is not None and isinstance(event.get("detail"), dict):
        return list(detect(event["detail"]))
    if detail_type == GUARDDUTY_DETAIL_TYPE:
        return [_attempt(parse_guardduty, event)]
    if detail_type in SECURITY_HUB_DETAIL_TYPES:
        findings = (event.get("detail") or {}).get("findings")
        if not isinstance(findings, list) or not findings:
            return [FindingRejected("invalid_event", f"{detail_type!r} event carries no findings in detail.findings")]
        return [_attempt(parse_asff, f) for f in findings]
    return [
        FindingRejected(
            "unsupported_event",
            f"event detail-type {detail_type!r} is not a finding irflow answers "
            f"(expected {GUARDDUTY_DETAIL_TYPE!r} or one of {', '.join(map(repr, SECURITY_HUB_DETAIL_TYPES))})",
        )
    ]


def _attempt(parse, record: Any) -> ParsedFinding | FindingRejected:
    try:
        return parse(record)
    except FindingRejected as rejected:
        return rejected


def unwrap(document: Any, depth: int = 0, detect: Detect | None = None) -> Unwrapped:
    """Every finding in `document` (already decoded JSON), each parsed or rejected with its reason.

    With `detect`, CloudTrail events and log files (`{"Records": [...]}`) are evaluated by the detection
    rules and become the findings they raise; without it they are not findings and are rejected."""
    if depth > 4:
        return [FindingRejected("invalid_event", "envelopes nested too deeply")]
    if isinstance(document, list):
        if not document:
            return [FindingRejected("empty", "an empty list holds no findings")]
        return [result for item in document for result in unwrap(item, depth + 1, detect)]
    if not isinstance(document, dict):
        return [FindingRejected("not_an_object", f"expected a JSON object, got {type(document).__name__}")]
    if _is_sns_notification(document):
        try:
            inner = json.loads(document["Message"])
        except json.JSONDecodeError as error:
            return [FindingRejected("not_json", f"SNS notification's Message is not JSON: {error.msg}")]
        return unwrap(inner, depth + 1, detect)
    if "detail-type" in document:
        return _from_event(document, detect)
    if detect is not None and isinstance(document.get("Records"), list):
        return [found for record in document["Records"] if isinstance(record, dict) for found in detect(record)]
    if isinstance(document.get("Findings"), list) and "Type" not in document:
        if not document["Findings"]:
            return [FindingRejected("empty", "GetFindings output with no findings in it")]
        return [result for item in document["Findings"] for result in unwrap(item, depth + 1, detect)]
    if _is_asff(document):
        return [_attempt(parse_asff, document)]
    return [_attempt(parse_guardduty, document)]


def unwrap_text(text: str, detect: Detect | None = None) -> Unwrapped:
    """A queue message body: one JSON document."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        return [FindingRejected("not_json", f"message body is not JSON: {error.msg} at line {error.lineno}")]
    return unwrap(document, detect=detect)
