"""Unwrapping whatever carries findings to irflow, down to the findings themselves.

A queue message or a file may hold: an EventBridge `GuardDuty Finding` event; an EventBridge
`Security Hub Findings - Imported` or `- Custom Action` event with one or more ASFF findings; either of
those inside an SNS notification; a raw GuardDuty finding (bare or GetFindings shape); a raw ASFF
finding; GetFindings output of either service; or a list of any of these.

With detection on, also CloudTrail: EventBridge `AWS API Call via CloudTrail` events, log files inlined as
`{"Records": [...]}`, and references to log files in S3 (an S3 event notification, or EventBridge's S3
`Object Created` event) that the listener fetches (`LogFileReference`).

`unwrap_arrivals` also says how each result arrived (`Arrival`: the SNS topics and the EventBridge event
around it, or neither: bare), which `intake.trust` judges; `unwrap` gives the results alone.

Hostile input ends in a typed refusal like any other bad input, never an exception: JSON nested deeper than
`models.finding.MAX_JSON_DEPTH` or holding a lone surrogate (`loads_json`), more than `MAX_ITEMS_PER_MESSAGE`
findings and records in one message, a record that breaks a parser or the detection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from irflow.detection.events import CLOUDTRAIL_DETAIL_TYPES
from irflow.models.asff import parse_asff
from irflow.models.finding import (
    GUARDDUTY_DETAIL_TYPE,
    FindingRejected,
    ParsedFinding,
    describe_validation_error,
    loads_json,
    parse_guardduty,
)

SECURITY_HUB_DETAIL_TYPES = ("Security Hub Findings - Imported", "Security Hub Findings - Custom Action")
S3_OBJECT_CREATED = "Object Created"


@dataclass(frozen=True)
class LogFileReference:
    """A CloudTrail log file in S3 named by a notification: the listener reads it and runs the rules."""

    bucket: str
    key: str
    size: int | None = None


@dataclass(frozen=True)
class Arrival:
    """How one result reached irflow: the SNS topics it came through (outermost first) and the EventBridge
    event around it (its `source` and `detail-type`). Neither: it came bare. These are claims of the message
    body: they are as good as the queue policy that decides who may send (see docs/listener.md)."""

    topics: tuple[str, ...] = ()
    event_source: str | None = None
    detail_type: str | None = None

    @property
    def bare(self) -> bool:
        return not self.topics and self.detail_type is None


Result = ParsedFinding | FindingRejected | LogFileReference
Unwrapped = list[Result]
Arrived = list[tuple[Result, Arrival]]
# Turns one CloudTrail record into the findings its rules raise (none, mostly): detection.Detector.
Detect = Callable[[dict[str, Any]], list[ParsedFinding]]


def _is_sns_notification(record: dict[str, Any]) -> bool:
    return record.get("Type") == "Notification" and isinstance(record.get("Message"), str) and "TopicArn" in record


def _is_asff(record: dict[str, Any]) -> bool:
    return "AwsAccountId" in record and "ProductArn" in record


def _field(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None where something on the way is not an object."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _log_file(bucket: Any, key: Any, size: Any, detect: Detect | None) -> Unwrapped:
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        return [FindingRejected("invalid_event", "S3 object notification without a bucket name and object key")]
    if detect is None:
        return [FindingRejected("unsupported_event", f"s3://{bucket}/{key}: log files are read only with detection on")]
    if "/CloudTrail-Digest/" in f"/{key}":
        return []  # integrity digests, not events
    return [LogFileReference(bucket, key, size if isinstance(size, int) else None)]


def _s3_notification(records: list[Any], detect: Detect | None) -> Unwrapped | None:
    """An S3 event notification (`Records` of `aws:s3`), or None when these are CloudTrail records."""
    if not records or not all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records):
        return None
    found: Unwrapped = []
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue  # deletions and the like say nothing about new events
        key = _field(record, "s3", "object", "key")
        key = unquote_plus(key) if isinstance(key, str) else key  # notification keys are URL-encoded
        found += _log_file(_field(record, "s3", "bucket", "name"), key, _field(record, "s3", "object", "size"), detect)
    return found


def _from_event(event: dict[str, Any], detect: Detect | None, budget: _Budget) -> Unwrapped:
    detail_type = event.get("detail-type")
    if detail_type == S3_OBJECT_CREATED and event.get("source") == "aws.s3":
        return _log_file(
            _field(event, "detail", "bucket", "name"),
            _field(event, "detail", "object", "key"),
            _field(event, "detail", "object", "size"),
            detect,
        )
    cloudtrail = isinstance(detail_type, str) and detail_type in CLOUDTRAIL_DETAIL_TYPES  # a list is unhashable
    if cloudtrail and detect is not None and isinstance(event.get("detail"), dict):
        return detect_safely(detect, event["detail"])
    if detail_type == GUARDDUTY_DETAIL_TYPE:
        return [_attempt(parse_guardduty, event)]
    if detail_type in SECURITY_HUB_DETAIL_TYPES:
        findings = _field(event, "detail", "findings")
        if not isinstance(findings, list) or not findings:
            return [FindingRejected("invalid_event", f"{detail_type!r} event carries no findings in detail.findings")]
        budget.spend(len(findings))
        return [_attempt(parse_asff, f) for f in findings]
    return [
        FindingRejected(
            "unsupported_event",
            f"event detail-type {detail_type!r} is not a finding irflow answers "
            f"(expected {GUARDDUTY_DETAIL_TYPE!r} or one of {', '.join(map(repr, SECURITY_HUB_DETAIL_TYPES))})",
        )
    ]


def detect_safely(detect: Detect, record: dict[str, Any]) -> list[ParsedFinding | FindingRejected]:
    """The findings one CloudTrail record raises, or why it could not be evaluated: a record whose fields have
    types no CloudTrail record has may break code after a rule matched, and the message must then reach the
    dead-letter queue with the reason, not come back until SQS gives up on it."""
    try:
        return list(detect(record))
    except Exception as error:  # noqa: BLE001 (any failure here is this record's, told in the reason)
        event = str(record.get("eventID") or record.get("eventName") or "?")[:80]
        return [
            FindingRejected(
                "detection_failed", f"CloudTrail record {event!r} broke the detection: {type(error).__name__}: {error}"
            )
        ]


def _attempt(parse, record: Any) -> ParsedFinding | FindingRejected:
    try:
        return parse(record)
    except FindingRejected as rejected:
        return rejected
    except Exception as error:  # noqa: BLE001 (a parser tripping on a field of an odd type: this record's fault)
        # refused with what broke, so the message reaches the dead-letter queue rather than coming back until SQS
        # gives up on it
        finding = str(_field(record, "Id") or _field(record, "id") or "?")[:200]
        broke = describe_validation_error(error) if isinstance(error, ValidationError) else repr(error)
        return FindingRejected("invalid_finding", f"finding {finding} could not be read: {broke}")


def unwrap(document: Any, depth: int = 0, detect: Detect | None = None) -> Unwrapped:
    """Every finding in `document` (already decoded JSON), each parsed or rejected with its reason.

    With `detect`, CloudTrail events and log files (`{"Records": [...]}`) are evaluated by the detection
    rules and become the findings they raise; without it they are not findings and are rejected."""
    return [result for result, _ in unwrap_arrivals(document, depth, detect)]


# A queue message holds at most 1 MiB: about 1,500 real CloudTrail records, or 100 findings in a Security Hub
# event. Thousands of tiny items (`[{},{},...]`: 350,000 of them) would hold the listener for seconds.
MAX_ITEMS_PER_MESSAGE = 5000


class _TooMany(Exception):
    pass


@dataclass
class _Budget:
    """How many more findings and records one message may hold (None: any number)."""

    left: int | None = None

    def spend(self, items: int) -> None:
        if self.left is not None:
            self.left -= items
            if self.left < 0:
                raise _TooMany


def unwrap_arrivals(
    document: Any,
    depth: int = 0,
    detect: Detect | None = None,
    arrival: Arrival = Arrival(),
    most: int | None = None,
) -> Arrived:
    """`unwrap`, each result with how it arrived (the envelopes around it). With `most`, a document holding
    more findings and CloudTrail records than that, all envelopes together, is refused whole ('too_many')."""
    try:
        return _unwrap(document, depth, detect, arrival, _Budget(most))
    except _TooMany:
        reason = f"more than {most} findings and CloudTrail records in one message: irflow reads at most {most}"
        return [(FindingRejected("too_many", reason), Arrival())]


def _unwrap(document: Any, depth: int, detect: Detect | None, arrival: Arrival, budget: _Budget) -> Arrived:
    def arrived(results: Unwrapped, how: Arrival = arrival) -> Arrived:
        return [(result, how) for result in results]

    if depth > 4:
        return arrived([FindingRejected("invalid_event", "envelopes nested too deeply")])
    if isinstance(document, list):
        if not document:
            return arrived([FindingRejected("empty", "an empty list holds no findings")])
        budget.spend(len(document))
        return [found for item in document for found in _unwrap(item, depth + 1, detect, arrival, budget)]
    if not isinstance(document, dict):
        return arrived([FindingRejected("not_an_object", f"expected a JSON object, got {type(document).__name__}")])
    if _is_sns_notification(document):
        through = replace(arrival, topics=(*arrival.topics, str(document["TopicArn"])))
        try:
            inner = loads_json(document["Message"], "SNS notification's Message")
        except json.JSONDecodeError as error:
            return arrived(
                [FindingRejected("not_json", f"SNS notification's Message is not JSON: {error.msg}")], through
            )
        except FindingRejected as rejected:
            return arrived([rejected], through)
        return _unwrap(inner, depth + 1, detect, through, budget)
    if "detail-type" in document:
        source = document.get("source")
        event = replace(
            arrival, event_source=source if isinstance(source, str) else None, detail_type=str(document["detail-type"])
        )
        return arrived(_from_event(document, detect, budget), event)
    if document.get("Event") == "s3:TestEvent" and document.get("Service") == "Amazon S3":
        return []  # S3 checks a new notification configuration with this; nothing to do
    if isinstance(document.get("Records"), list):
        budget.spend(len(document["Records"]))
        notification = _s3_notification(document["Records"], detect)
        if notification is not None:
            return arrived(notification)
        if detect is not None:
            return arrived(
                [
                    found
                    for record in document["Records"]
                    if isinstance(record, dict)
                    for found in detect_safely(detect, record)
                ]
            )
    if isinstance(document.get("Findings"), list) and "Type" not in document:
        if not document["Findings"]:
            return arrived([FindingRejected("empty", "GetFindings output with no findings in it")])
        budget.spend(len(document["Findings"]))
        return [found for item in document["Findings"] for found in _unwrap(item, depth + 1, detect, arrival, budget)]
    if _is_asff(document):
        return arrived([_attempt(parse_asff, document)])
    return arrived([_attempt(parse_guardduty, document)])


def unwrap_text_arrivals(text: str, detect: Detect | None = None) -> Arrived:
    """A queue message body (one JSON document) unwrapped, each result with how it arrived."""
    try:
        document = loads_json(text, "message body")
    except json.JSONDecodeError as error:
        return [
            (FindingRejected("not_json", f"message body is not JSON: {error.msg} at line {error.lineno}"), Arrival())
        ]
    except FindingRejected as rejected:
        return [(rejected, Arrival())]
    return unwrap_arrivals(document, detect=detect, most=MAX_ITEMS_PER_MESSAGE)
