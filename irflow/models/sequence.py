"""Attack sequences (GuardDuty Extended Threat Detection): the parent incident and the incidents it opened or
joined, one per resource the sequence names that a playbook answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ChildIncident(BaseModel):
    workflow_id: str
    incident_id: str
    resource_type: str
    resource_id: str
    playbook: str
    joined: bool = Field(default=False, description="the resource's incident was running already")
    status: str | None = Field(default=None, description="its status when the parent last looked")
    received_at: datetime | None = None
    contained_at: datetime | None = None
    time_to_contain_seconds: float | None = None
    decisions: list[str] = Field(default_factory=list, description="its decisions, in words")
