"""The blast-radius governor's messages: how many resources irflow may contain unasked, per hour."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

GOVERNOR_WORKFLOW = "IrflowContainmentGovernor"
RESERVE_UPDATE = "reserve"
WINDOW_SECONDS = 3600


def governor_id(task_queue: str) -> str:
    """One governor per deployment (its task queue), whatever the number of workers and listeners."""
    return f"irflow-governor-{task_queue}"


class ReservationRequest(BaseModel):
    incident_id: str
    account_id: str
    per_account_limit: int = Field(ge=0)
    fleet_limit: int = Field(ge=0)


class Reservation(BaseModel):
    granted: bool
    reason: str = ""
    account_count: int = 0
    fleet_count: int = 0


class Reserved(BaseModel):
    incident_id: str
    account_id: str
    at: datetime


class GovernorState(BaseModel):
    """Carried across continue-as-new: the reservations of the last hour."""

    reservations: list[Reserved] = Field(default_factory=list)
