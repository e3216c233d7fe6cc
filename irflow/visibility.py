"""What irflow shows where nothing is encrypted: workflow ids, search attributes, the static summary and
details, the UI's current details, log lines and span attributes. Resource ids (instances, buckets,
functions, databases, ARNs of resources) appear as they are; identities never do.

An identity is anything that names a principal: an IAM user or role name, a role session's principal id, an
access key id (a credential's id: GuardDuty shows it, and it leads to the user). It is shown only as
`identity_hash`, the hash the router also builds into incident keys, so the same identity always shows the
same way and can be searched for (`irflow list --resource NAME` hashes NAME before it asks Temporal).
A finding's remote IP addresses, user agents and command lines are never shown at all: they stay in the
finding, which travels only in payloads (sealed by `irflow.codec` when it is on) and in the evidence bucket.

The same rules decide how incidents are listed (the second half): what a person types is hashed or quoted
before it reaches a visibility query.

Nothing here does I/O of its own, and the workflow calls the first half: the listing functions read through
the Temporal client their caller hands them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution, WorkflowHandle

    from irflow.models.finding import Finding


def identity_hash(value: str) -> str:
    """An identity as it may be shown in clear: "h" and the first 20 hex digits of its SHA-256."""
    return f"h{hashlib.sha256(value.encode()).hexdigest()[:20]}"


def shown_resource_id(resource_id: str, personal: bool) -> str:
    """The resource id as irflow shows it in clear: hashed when it names a principal (`personal`)."""
    return identity_hash(resource_id) if personal and resource_id else resource_id


def identities(*findings: Finding) -> set[str]:
    """Every identity the findings name (user, principal id, access key)."""
    return {
        value
        for finding in findings
        for value in (finding.resource.user_name, finding.resource.access_key_id, finding.resource.principal_id)
        if value
    }


def redacted(text: str, *findings: Finding, resource: tuple[str, str] = ("", "")) -> str:
    """`text` with each identity the findings name replaced by its hash, each remote IP by "[remote ip]", and
    `resource` = (resource id, as it is shown: `shown_resource_id`) the way the router decided, in one pass."""
    replacements = {value: identity_hash(value) for value in identities(*findings)}
    resource_id, shown = resource
    if resource_id and shown != resource_id:
        replacements[resource_id] = shown
    replacements |= {f.remote_ip: "[remote ip]" for f in findings if f.remote_ip}
    if not text or not replacements:
        return text
    pattern = re.compile("|".join(re.escape(v) for v in sorted(replacements, key=len, reverse=True)))
    return pattern.sub(lambda match: replacements[match.group(0)], text)


# --- listing incidents: Temporal visibility over irflow's search attributes ---
# The commands that list incidents (`irflow list`, `irflow stats`, an incident id typed at any command) and the
# attack sequence's roll-up share these: one window, one query, one row, one way to find an incident's run.
# They build text and read what a client hands back; the client is the caller's.

_WINDOW = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Window(NamedTuple):
    """From `start` to `end`. `end` None: up to now, and the queries leave it open, so an incident the server
    dates a moment after this machine's clock says now is not left out."""

    start: datetime
    end: datetime | None = None


def parse_window(text: str, option: str = "--since", *, end: datetime | None = None) -> Window:
    """The window `text` long (a number and s, m, h, d or w: 45s, 90m, 12h, 30d, 2w) that ends at `end` (naive:
    UTC), or now. ValueError, naming `option`, for anything else."""
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{option} {text!r}: use a number and s, m, h, d or w (e.g. 30d, 12h, 2w)")
    length = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if end is None:
        return Window(datetime.now(UTC) - length)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return Window(end - length, end)


def quoted(value: str) -> str:
    """A string as a visibility query literal: quotes and backslashes escaped, whatever a person typed."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _moment(at: datetime) -> str:
    return quoted(at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _within(column: str, window: Window) -> list[str]:
    bounds = [f"{column} >= {_moment(window.start)}"]
    return bounds + ([f"{column} <= {_moment(window.end)}"] if window.end else [])


def incident_query(
    *,
    running: bool | None = None,
    opened: Window | None = None,
    closed: Window | None = None,
    status: str | None = None,
    phase: str | None = None,
    severity: str | None = None,
    finding_type: str | None = None,
    resource: str | None = None,
) -> str:
    """A visibility query for incidents: running or not (None: both), opened or closed within a window, and
    irflow's search attributes. `finding_type` ending in * is a prefix ("Recon:EC2/*": the whole family);
    `resource` finds an identity through its hash too (an identity is stored only hashed)."""
    from irflow.models.incident import INCIDENT_WORKFLOW
    from workflows import search_attributes as sa

    clauses = [f"WorkflowType = {quoted(INCIDENT_WORKFLOW)}"]
    if running is not None:
        clauses.append(f"ExecutionStatus {'=' if running else '!='} 'Running'")
    for attribute, value in ((sa.STATUS, status), (sa.PHASE, phase), (sa.SEVERITY, severity and severity.upper())):
        if value:
            clauses.append(f"{attribute.name} = {quoted(value)}")
    if resource:
        clauses.append(f"{sa.RESOURCE_ID.name} IN ({quoted(resource)}, {quoted(identity_hash(resource))})")
    if finding_type:
        prefix = finding_type.endswith("*")
        operator, value = ("STARTS_WITH", finding_type[:-1]) if prefix else ("=", finding_type)
        clauses.append(f"{sa.FINDING_TYPE.name} {operator} {quoted(value)}")
    if opened:
        clauses += _within("StartTime", opened)
    if closed:
        clauses += _within("CloseTime", closed)
    return " AND ".join(clauses)


class IncidentRow(BaseModel):
    """One incident as visibility lists it: its ids (the incident id from its memo), irflow's search attributes,
    when it started and closed, and how its workflow stands (RUNNING, COMPLETED, FAILED, TERMINATED...)."""

    workflow_id: str
    run_id: str | None = None
    incident_id: str | None = None
    status: str | None = None
    phase: str | None = None
    severity: str | None = None
    finding_type: str | None = None
    resource_id: str | None = None
    started: datetime | None = None
    closed: datetime | None = None
    workflow_status: str | None = None


async def incident_row(execution: WorkflowExecution) -> IncidentRow:
    from workflows import search_attributes as sa

    attributes = execution.typed_search_attributes
    memo = await execution.memo()
    return IncidentRow(
        workflow_id=execution.id,
        run_id=execution.run_id,
        incident_id=memo.get("incident_id"),
        status=attributes.get(sa.STATUS),
        phase=attributes.get(sa.PHASE),
        severity=attributes.get(sa.SEVERITY),
        finding_type=attributes.get(sa.FINDING_TYPE),
        resource_id=attributes.get(sa.RESOURCE_ID),
        started=execution.start_time,
        closed=execution.close_time,
        workflow_status=execution.status.name if execution.status else None,
    )


async def incident_rows(client: Client, query: str, limit: int | None = None) -> list[IncidentRow]:
    """The incidents `query` lists (newest first, at most `limit`), each read as an `IncidentRow`."""
    return [await incident_row(execution) async for execution in client.list_workflows(query, limit=limit)]


async def find_incident_run(client: Client, workflow_id: str, incident_id: str) -> WorkflowHandle | None:
    """The run of `workflow_id` (an incident key) that is incident `incident_id`, found by the incident's hash
    (the IrflowIncidentHash search attribute): a later incident of the same resource is another run of the same
    workflow id. None when visibility lists no such run (never was, or past the namespace's retention)."""
    from irflow.models.incident import incident_hash
    from workflows import search_attributes as sa

    query = f"WorkflowId = {quoted(workflow_id)} AND {sa.INCIDENT_HASH.name} = '{incident_hash(incident_id)}'"
    async for execution in client.list_workflows(query, limit=1):
        return client.get_workflow_handle(workflow_id, run_id=execution.run_id)
    return None
