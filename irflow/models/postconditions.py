"""Containment that is verified, not assumed: what a postcondition check found, and who changed a resource.

Every containment step has a read-only check (`activities.postconditions.POSTCONDITIONS`, keyed by the step's
activity name) that takes the step's own argument and says whether what the step did still holds.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Postcondition(BaseModel):
    """One step's postcondition, as found now. `holds=False` is drift: someone undid part of the containment."""

    step: str = Field(description="the containment step's activity name (isolate_network, deactivate_access_key...)")
    holds: bool
    found: str = Field(default="", description="what was found, in words: 'eni-1 carries sg-a, sg-b'")
    resources: list[str] = Field(
        default_factory=list, description="ids or names CloudTrail knows the drifted resources by (for LookupEvents)"
    )
    gone: list[str] = Field(
        default_factory=list,
        description="resources that no longer exist (a terminated instance, a deleted key): not drift, since there "
        "is nothing left to re-apply the step to, but worth a note",
    )


class ChangeQuery(BaseModel):
    """Who changed these resources since `since`? Asked of CloudTrail (LookupEvents) when drift is found."""

    account_id: str
    region: str
    resources: list[str]
    since: datetime
    until: datetime | None = None
    own_principals: list[str] = Field(default_factory=list, description="ARN globs to leave out: irflow itself")


class Change(BaseModel):
    """One CloudTrail record of a change to a contained resource."""

    event_name: str
    event_time: datetime
    principal: str = Field(description="the caller's ARN (or user name when CloudTrail gives no ARN)")
    event_id: str = ""
    resource: str = ""


class ChangeLookup(BaseModel):
    """What CloudTrail could tell: the changes, or why it could not (`reason`, e.g. LookupEvents not allowed)."""

    changes: list[Change] = Field(default_factory=list)
    reason: str = ""
