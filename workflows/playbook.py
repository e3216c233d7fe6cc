"""What every playbook provides, and the pieces they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.finding import Severity
    from irflow.models.incident import Eradication

if TYPE_CHECKING:
    from workflows.incident import IncidentWorkflow
    from workflows.saga import Saga


@dataclass(frozen=True)
class ContainmentStep:
    activity: str
    undo: str


@dataclass(frozen=True)
class ContainmentPlan:
    severity: Severity
    requires_approval: bool
    reasons: list[str] = field(default_factory=list)


class Playbook:
    """A runbook for one kind of resource. `contains = False` marks a triage-only playbook: evidence
    and an analyst's decision, no automated change to the resource."""

    name = "abstract"
    contains = True

    def __init__(self, incident: IncidentWorkflow) -> None:
        self.incident = incident

    async def analyse(self) -> ContainmentPlan:
        raise NotImplementedError

    async def contain(self, saga: Saga) -> None:
        raise NotImplementedError

    async def collect_evidence(self) -> None:
        raise NotImplementedError

    async def eradicate(self, choice: Eradication) -> None:
        raise NotImplementedError
