"""Who changed a contained resource: asked of CloudTrail (LookupEvents) when a postcondition no longer holds.

Best effort: CloudTrail may be unreachable, LookupEvents not allowed, throttled (it allows two calls a second per
account and region) or, in a test, not implemented. Then the answer says why (`ChangeLookup.reason`) and never
raises: the drift is real whoever caused it, and knowing who is a bonus for the report.

LookupEvents filters on one attribute at a time: one lookup per resource (ResourceName), from `since`. Read-only
events (CloudTrail's ReadOnly flag) and irflow's own calls (`own_principals`, matched as irflow.own_principals
matches them) are left out; an event naming several of the resources is kept once. Newest first.

CloudTrail records events in the region they happen in, global services' (IAM) in us-east-1: the lookup is made in
the query's region only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, client, error_code, error_message
from irflow.models.postconditions import Change, ChangeLookup, ChangeQuery
from irflow.own_principals import caller_arn, made_by_own_principal

PAGE_SIZE = 50  # LookupEvents' most
MAX_PAGES = 4  # per resource: the newest 200 events; LookupEvents is slow and throttled


def _why(error: Exception) -> str:
    if isinstance(error, ClientError):
        message = error_message(error)
        return f"{error_code(error)}: {message}" if message else error_code(error)
    if isinstance(error, ApplicationError):  # typed by activities.aws (assuming the member role failed)
        return f"{error.type}: {error.message}"
    return f"{type(error).__name__}: {error}"


def _record(event: dict[str, Any]) -> dict[str, Any]:
    """The CloudTrail record inside a LookupEvents event (a JSON string); {} when absent or unreadable."""
    try:
        record = json.loads(event.get("CloudTrailEvent") or "{}")
    except (TypeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _events(trail, resource: str, since: datetime, until: datetime | None, notes: list[str]) -> Iterator[dict]:
    arguments: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": resource}],
        "StartTime": since,
        "MaxResults": PAGE_SIZE,
    }
    if until is not None:
        arguments["EndTime"] = until
    for _ in range(MAX_PAGES):
        response = trail.lookup_events(**arguments)
        yield from response.get("Events", [])
        token = response.get("NextToken")
        if not token:
            return
        arguments["NextToken"] = token
    notes.append(f"{resource}: only the newest {PAGE_SIZE * MAX_PAGES} events were read")


def _change(event: dict[str, Any], resource: str, own_principals: list[str]) -> Change | None:
    """The event as a change by someone other than irflow, or None (a read, irflow's own call)."""
    record = _record(event)
    if str(event.get("ReadOnly", record.get("readOnly", ""))).lower() == "true":
        return None
    if made_by_own_principal(record, own_principals):
        return None
    when = event.get("EventTime") or record.get("eventTime")
    name = event.get("EventName") or record.get("eventName")
    if not when or not name:
        return None
    return Change(
        event_name=name,
        event_time=when,
        principal=caller_arn(record) or event.get("Username") or "unknown",
        event_id=event.get("EventId") or record.get("eventID") or "",
        resource=resource,
    )


@aws_activity("cloudtrail:LookupEvents")
def changes_to(query: ChangeQuery) -> ChangeLookup:
    """Who changed `query.resources` since `query.since` (until `query.until`), irflow itself left out."""
    found: dict[str, Change] = {}
    notes: list[str] = []
    resources = list(dict.fromkeys(r for r in query.resources if r))
    try:
        trail = client("cloudtrail", query.region, query.account_id)
        for done, resource in enumerate(resources):
            try:
                for event in _events(trail, resource, query.since, query.until, notes):
                    change = _change(event, resource, query.own_principals)
                    if change is not None:
                        found.setdefault(change.event_id or f"{resource}/{len(found)}", change)
            except Exception as error:  # noqa: BLE001 (best effort: a failed lookup is a reason, never a failure)
                rest = resources[done + 1 :]
                skipped = f" ({', '.join(rest)} not asked)" if rest else ""
                notes.append(f"CloudTrail LookupEvents failed for {resource}{skipped}: {_why(error)}")
                break
    except Exception as error:  # noqa: BLE001 (the client itself: assuming the member role, loading the service)
        notes.append(f"cannot ask CloudTrail in {query.account_id}/{query.region}: {_why(error)}")
    changes = sorted(found.values(), key=lambda c: c.event_time, reverse=True)
    return ChangeLookup(changes=changes, reason="; ".join(notes))
