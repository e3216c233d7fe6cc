"""What every playbook provides, what it may see of its incident, and the one containment loop.

A playbook is the runbook for one kind of resource. It sees its incident only through `IncidentContext`
(the finding, the policy, running activities, keeping a record), never the workflow itself; it states its
containment as steps, each an activity and its undo, and the base class walks them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.tagging import restore_resource_tags, tag_resource
    from irflow.models.evidence import EvidenceObject, MemoryCaptureResult, SnapshotEvidence
    from irflow.models.finding import Finding, Severity
    from irflow.models.incident import Eradication, FindingDelivery, ResponsePolicy, StepResult
    from irflow.models.sequence import ChildIncident
    from irflow.models.tagging import tag_request_for

from workflows.activity_options import QUICK, activity_name

Argument = TypeVar("Argument")
Result = TypeVar("Result")


class IncidentContext(Protocol):
    """The part of an incident a playbook may see and do. The workflow's record implements it."""

    @property
    def incident_id(self) -> str: ...

    @property
    def finding(self) -> Finding:
        """The finding that opened the incident."""

    @property
    def findings(self) -> list[Finding]:
        """Every finding the incident has absorbed so far (the first included)."""

    @property
    def policy(self) -> ResponsePolicy: ...

    @property
    def raw_packed(self) -> str | None: ...

    @property
    def routing_reason(self) -> str: ...

    def note(self, event: str) -> None: ...

    @overload
    async def act(
        self, activity: Callable[[Argument], Awaitable[Result]], argument: Argument, options: dict[str, Any]
    ) -> Result: ...

    @overload
    async def act(self, activity: Callable[[Argument], Result], argument: Argument, options: dict[str, Any]) -> Result:
        """Run one activity, recorded as an action; its failure is recorded, then raised."""

    @overload
    async def try_act(
        self, activity: Callable[[Argument], Awaitable[Result]], argument: Argument, options: dict[str, Any]
    ) -> Result | None: ...

    @overload
    async def try_act(
        self, activity: Callable[[Argument], Result], argument: Argument, options: dict[str, Any]
    ) -> Result | None:
        """Like `act`, for steps whose failure must not stop the incident: None when it failed."""

    def register_undo(self, step: str, undo: Callable[[Any], Any], argument: Any) -> None:
        """Before acting: how to undo the step, should the incident be undone."""

    def add_evidence(self, *objects: EvidenceObject) -> None: ...

    def keep_context(self, context: Any) -> None:
        """The resource as it was before any change (the prior state every undo restores)."""

    def keep_snapshots(self, snapshots: list[SnapshotEvidence]) -> None: ...

    def keep_memory_capture(self, capture: MemoryCaptureResult) -> None: ...

    def in_background(self, work: Any) -> Any:
        """Start evidence work the report (not the analyst) waits for; its future."""

    def keep_related_incident(self, workflow_id: str) -> None: ...

    def keep_child(self, child: ChildIncident) -> None:
        """An incident this one opened or joined (an attack sequence's, per resource), or its newer state."""


@dataclass(frozen=True)
class ContainmentStep:
    """One containment step: an activity and the activity that undoes it (None: nothing to undo, such as a
    snapshot that stays as evidence). `takes` makes the step's argument from the playbook's step input."""

    activity: Callable[[Any], Any]
    undo: Callable[[Any], Any] | None
    takes: Callable[[Any], Any] = field(default=lambda step_input: step_input)

    @property
    def name(self) -> str:
        return activity_name(self.activity)

    @property
    def undo_name(self) -> str | None:
        return activity_name(self.undo) if self.undo else None

    def argument(self, step_input: Any) -> Any:
        return self.takes(step_input)


# Every playbook's first step: the incident tags, the same way on every kind of resource.
TAG_STEP = ContainmentStep(tag_resource, restore_resource_tags, takes=tag_request_for)


@dataclass(frozen=True)
class ContainmentPlan:
    """What analysis concluded: the severity, whether containment waits for an analyst, and why. A protected
    subject (`workflows.policy.protection`) waits for `approvals_required` different approvers."""

    severity: Severity
    requires_approval: bool
    reasons: list[str] = field(default_factory=list)
    approvals_required: int = 1
    protected: bool = False


class Playbook:
    """A runbook for one kind of resource. `contains = False` marks a triage-only playbook: evidence
    and an analyst's decision, no automated change to the resource."""

    name = "abstract"
    contains = True
    containment_steps: tuple[ContainmentStep, ...] = ()
    containment_options: dict[str, Any] = QUICK
    # True: the steps are independent and taken all at once (every undo registered first); False: in order.
    concurrent_containment = False

    def __init__(self, incident: IncidentContext) -> None:
        self.incident = incident
        # Each containment step taken, with the argument it took: what verification re-checks and re-applies.
        self.applied: list[tuple[ContainmentStep, Any]] = []

    async def analyse(self) -> ContainmentPlan:
        raise NotImplementedError

    def carried(self) -> dict[str, Any]:
        """Its own values the incident's next run needs (continued as new: `workflows.carry_over`); what belongs
        to this run only (a future) is left behind by the encoding."""
        return {k: v for k, v in vars(self).items() if k not in ("incident", "applied")}

    def restore(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def containment_input(self) -> Any:
        """What every step (and its undo) takes: the target and its prior state. Made once per
        containment, so every retry of a step sees the identical input."""
        raise NotImplementedError

    async def contain(self) -> None:
        """Every step with its undo registered before it acts (a step that fails half-way is undone too: every
        undo restores the recorded prior state and is idempotent). In order, or all at once when the playbook's
        steps are independent (`concurrent_containment`): then every undo is registered before the first step
        acts, a failure waits for the steps still running, and the incident undoes them all, newest first."""
        step_input = self.containment_input()
        if not self.concurrent_containment:
            for step in self.containment_steps:
                await self.before_step(step)
                await self._take(step, self._register(step, step_input))
            return
        await self.take_at_once(self.containment_steps, step_input)

    async def take_at_once(self, steps: tuple[ContainmentStep, ...] | list[ContainmentStep], step_input: Any) -> None:
        """Steps that do not depend on each other, all at once: every undo registered before the first acts; a
        failure waits for the others still running (no undo races its step), then is raised."""
        taken = [(step, self._register(step, step_input)) for step in steps]
        outcomes = await asyncio.gather(*(self._prepare_and_take(s, a) for s, a in taken), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise next((e for e in errors if isinstance(e, ActivityError)), errors[0])

    def _register(self, step: ContainmentStep, step_input: Any) -> Any:
        argument = step.argument(step_input)
        if step.undo is not None:
            self.incident.register_undo(step.name, step.undo, argument)
        self.applied.append((step, argument))
        return argument

    async def _prepare_and_take(self, step: ContainmentStep, argument: Any) -> None:
        await self.before_step(step)
        await self._take(step, argument)

    async def _take(self, step: ContainmentStep, argument: Any) -> None:
        try:
            result = await self.incident.act(step.activity, argument, self.containment_options)
        except ActivityError:
            self.step_failed(step)
            raise
        self.step_done(step, result)

    async def reapply(self, step: ContainmentStep, argument: Any) -> StepResult:
        """Take a step again (its postcondition no longer holds): every step is idempotent, and its undo is
        registered already, with the prior state from before the first time."""
        return await self.incident.act(step.activity, argument, self.containment_options)

    async def before_step(self, step: ContainmentStep) -> None:
        """About to take `step` (a playbook that must do something first, such as imaging memory before the
        network is cut, does it here)."""

    def step_done(self, step: ContainmentStep, result: StepResult) -> None:
        """A step succeeded (a playbook that records something of a step's result says so here)."""

    def step_failed(self, step: ContainmentStep) -> None:
        """A step failed, and the incident is about to be undone."""

    async def collect_evidence(self) -> None:
        raise NotImplementedError

    def finding_joined(self, delivery: FindingDelivery) -> None:
        """A new finding joined the running incident (an attack sequence updated with more resources). Called from
        the signal handler, which cannot wait: work the report needs goes in `incident.in_background`."""

    async def before_report(self) -> None:
        """The incident is about to write its report (a playbook that rolls up other incidents reads them here)."""

    async def eradicate(self, choice: Eradication) -> None:
        raise NotImplementedError
