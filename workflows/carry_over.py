"""Continue-as-new: an incident hands its state to a fresh run before its history grows large.

A storm of findings (each a signal, up to 512 KB) would otherwise grow one run's history until its workflow task
fails and the server terminates the incident, its undo stack with it. Once a run's history passes
`ResponsePolicy.history_events_per_run` (IRFLOW_HISTORY_EVENTS_PER_RUN) events, or the server suggests it, the
incident continues as new under the same workflow id, at a safe point only: while it waits for an analyst's
decision (before containment, or contained and guarded), never in the middle of containment or an undo. First the
guard's check in flight, the notifications queued and every handler (a decision at STS) finish, and no background
work (a snapshot's digest) may be running; a decision that arrives meanwhile is taken here, not carried.

What goes along (`irflow.models.incident.CarriedIncident`): the state (findings as a summary and the latest few
kept whole, the timeline's notes of joining findings thinned), the undo stack with the prior state each undo
restores, the steps taken (what the guard re-checks), the playbook's own values, the pending question with its
original deadline and reminders, the guard's memory, the proofs already used, the policy the incident started
under. Signals arriving during the switch stay on the run: Temporal refuses the switch until they are handled.

The limit: a switch loses the race with a signal that arrives while its workflow task is being completed (the
server refuses the switch, the worker replays the run and tries again: temporalio/temporal#1289), and the server
fails any workflow task that leaves 100 signals waiting (FORCE_CLOSE_COMMAND), after which the run replays too. A
storm fast enough that a replay always leaves 100 signals waiting keeps the run from switching until the storm
slows: the run then grows past its bound, and switches after. bench/history_storm.py measures it.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.carry_over import Encoded, FindingsSummary, kept_findings
    from irflow.models.incident import CarriedIncident, CarriedUndo, IncidentInput, TimelineEntry

from workflows.activity_options import activity_name
from workflows.closing import SourceFindings
from workflows.decisions import DecisionDesk
from workflows.guard import ContainmentGuard
from workflows.notifications import Notifier
from workflows.playbook import TAG_STEP, ContainmentStep, Playbook
from workflows.record import IncidentRecord
from workflows.saga import Undo

CONTINUE_AS_NEW = "issue-16-continue-as-new"
# Bounds on what one run hands the next (a continue-as-new input is a payload: it must stay well under 2 MB).
CARRIED_RAW_BYTES = 512 * 1024  # original records not yet stored as exhibits: the latest (each up to 512 KB)
REMEMBERED = 1000  # latest delivery ids and finding versions, to recognise a redelivery or a repeat
TIMELINE_JOINS_KEPT = 20  # notes of joining findings kept at each end; the ones between become one note
HISTORY_BYTES_PER_RUN = 2 * 1024 * 1024
# Findings kept whole before an incident keeps only a few and counts the rest (its state is what the `state`
# query answers, and a query's answer must stay well under 2 MB too).
BOUND_AFTER = 100
JOINED_NOTE = "finding joined:"


# --- values across runs ---


def encode(value: Any) -> Encoded | None:
    """A pydantic model, plain JSON, or a list or dict of those; None for what belongs to one run (a future)."""
    if isinstance(value, BaseModel):
        cls = type(value)
        return Encoded(model=f"{cls.__module__}:{cls.__qualname__}", data=value.model_dump(mode="json"))
    if value is None or isinstance(value, bool | int | float | str):
        return Encoded(data=value)
    if isinstance(value, list | tuple):
        items = [encode(v) for v in value]
        return None if any(i is None for i in items) else Encoded(model="list", data=items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: encode(v) for k, v in value.items()}
        return None if any(i is None for i in items.values()) else Encoded(model="dict", data=items)
    return None


def decode(encoded: Encoded) -> Any:
    if encoded.model == "list":
        return [decode(Encoded.model_validate(i)) for i in encoded.data]
    if encoded.model == "dict":
        return {k: decode(Encoded.model_validate(v)) for k, v in encoded.data.items()}
    if encoded.model:
        module, qualname = encoded.model.split(":")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls.model_validate(encoded.data)
    return encoded.data


def playbook_steps(playbook: Playbook) -> dict[str, ContainmentStep]:
    """Every containment step the playbook's module defines, by name (its own and the shared tagging step)."""
    steps = {TAG_STEP.name: TAG_STEP}
    for value in vars(importlib.import_module(type(playbook).__module__)).values():
        for step in value if isinstance(value, tuple) else (value,):
            if isinstance(step, ContainmentStep):
                steps[step.name] = step
    for step in playbook.containment_steps:
        steps[step.name] = step
    return steps


def undo_activity(steps: dict[str, ContainmentStep], name: str) -> Any:
    return next(s.undo for s in steps.values() if s.undo is not None and activity_name(s.undo) == name)


def thinned(timeline: list[TimelineEntry]) -> list[TimelineEntry]:
    """The timeline with the notes of joining findings between the first and the last few made one note."""
    joins = [i for i, t in enumerate(timeline) if t.event.startswith(JOINED_NOTE)]
    if len(joins) <= 2 * TIMELINE_JOINS_KEPT:
        return timeline
    dropped = joins[TIMELINE_JOINS_KEPT:-TIMELINE_JOINS_KEPT]
    first, last = timeline[dropped[0]], timeline[dropped[-1]]
    note = first.model_copy(
        update={"event": f"{len(dropped)} more findings joined from {first.at} to {last.at} (counted in the summary)"}
    )
    gone = set(dropped[1:])
    return [note if i == dropped[0] else t for i, t in enumerate(timeline) if i not in gone]


def summarised(findings: list) -> FindingsSummary:
    summary = FindingsSummary(absorbed=0)
    for finding in findings:
        summary.count(finding)
    return summary


# --- the switch ---


class CarryOver:
    def __init__(
        self,
        request: IncidentInput,
        record: IncidentRecord,
        desk: DecisionDesk,
        guard: ContainmentGuard,
        notifier: Notifier,
        source_findings: SourceFindings,
    ) -> None:
        self.request, self.record, self.desk, self.guard = request, record, desk, guard
        self.notifier, self.source_findings = notifier, source_findings
        self.playbook: Playbook | None = None
        self._refused = False  # a run from before the switch existed (`workflow.patched`): it never switches

    def bound_findings(self) -> None:
        """A finding joined: past `BOUND_AFTER`, the findings are summarised (from then on, in every run)."""
        record = self.record
        if record.bounded or self._refused or len(record.state.findings_absorbed) <= BOUND_AFTER:
            return
        if not workflow.patched(CONTINUE_AS_NEW):
            self._refused = True
            return
        record.state.findings_summary = summarised(record.state.findings_absorbed)
        record.state.findings_absorbed = kept_findings(record.state.findings_absorbed)
        record.bounded = True

    def due(self) -> bool:
        """Time to continue as new, and nothing in the background would be lost by it."""
        if self._refused or not self.record.background_idle():
            return False
        info = workflow.info()
        limit = self.record.policy.history_events_per_run
        if not (
            info.get_current_history_length() >= limit
            or info.get_current_history_size() >= HISTORY_BYTES_PER_RUN
            or info.is_continue_as_new_suggested()
        ):
            return False
        # Asked here, not when switching: a run from before the switch existed must not even wake up for it (the
        # wait it woke from would start a timer its history does not have).
        if not workflow.patched(CONTINUE_AS_NEW):
            self._refused = True
        return not self._refused

    def _quiet(self) -> bool:
        return (
            workflow.all_handlers_finished()
            and not self.guard.checking
            and self.notifier.idle
            and self.record.background_idle()
        )

    async def continue_as_new(self) -> None:
        """Continue as new, from a decision's wait (once `due`); returns only when a decision came meanwhile."""
        await self.guard.pause()
        while not self._quiet() and self.desk.decision is None:
            await workflow.wait_condition(lambda: self._quiet() or self.desk.decision is not None)
        if self.desk.decision is not None:
            self.guard.resume()
            return
        self.record.note(f"history of {workflow.info().get_current_history_length()} events: continuing as new")
        carried = self.carried()
        workflow.continue_as_new(self.request.model_copy(update={"carried": carried, "raw_packed": None}))

    def carried(self) -> CarriedIncident:
        record, playbook = self.record, self.playbook
        assert playbook is not None
        state = record.state.model_copy()
        summary = state.findings_summary or summarised(state.findings_absorbed)
        summary.runs += 1
        record_carried = record.carried(CARRIED_RAW_BYTES, REMEMBERED)
        if record_carried.raw_dropped:
            record.note(f"{record_carried.raw_dropped} original finding record(s) of the storm not stored as exhibits")
        state.findings_summary = summary
        state.findings_absorbed = kept_findings(state.findings_absorbed)
        state.timeline = thinned(record.state.timeline)
        record_carried.source_findings = [
            (source, finding_id, encode(value)) for (source, finding_id), value in self.source_findings._kept.items()
        ]
        record_carried.not_told = dict(self.source_findings._not_told)
        values = {k: e for k, v in playbook.carried().items() if (e := encode(v)) is not None}
        return CarriedIncident(
            state=state,
            record=record_carried,
            playbook=values,
            applied=[(step.name, encode(argument)) for step, argument in playbook.applied],
            undos=[
                CarriedUndo(step=u.step, undo=activity_name(u.activity), argument=encode(u.argument))
                for u in record.saga.undos
            ],
            guard=self.guard.carried() if self.guard.playbook is not None else None,  # contained: guarded
            used_proofs=sorted(self.desk.used_proofs),
        )

    def restore(self, carried: CarriedIncident, playbook: Playbook) -> None:
        """The next run, as the one before left it (called before any signal of the new run is handled)."""
        self.playbook = playbook
        record = self.record
        record.state = carried.state
        record.restore(carried.record)
        self.source_findings._kept.update({(s, i): decode(e) for s, i, e in carried.record.source_findings})
        self.source_findings._not_told.update(carried.record.not_told)
        playbook.restore({k: decode(e) for k, e in carried.playbook.items()})
        steps = playbook_steps(playbook)
        playbook.applied = [(steps[name], decode(argument)) for name, argument in carried.applied]
        record.saga.restore([Undo(u.step, undo_activity(steps, u.undo), decode(u.argument)) for u in carried.undos])
        if carried.guard is not None:
            self.guard.restore(carried.guard)
        self.desk.used_proofs.update(carried.used_proofs)
