"""The attack-sequence playbook: a GuardDuty Extended Threat Detection finding (`AttackSequence:*`, always CRITICAL)
is the parent incident of the resources it names.

Analyse: at once, open (or join) one incident per resource the sequence names that a playbook answers (instances,
access keys, buckets...), through the listener's own path (`activities.sequences`): each is the incident a finding
about that resource would have opened, and its own playbook contains it. Resources no playbook answers are listed
in the plan's reasons, not opened; so is a resource whose submission failed, with its error (the others open all the
same). With IRFLOW_ATTACK_SEQUENCE_FANOUT off, nothing is opened.

GuardDuty updates a sequence in place (same id, more resources): the update joins this incident, and the resources it
adds are opened then, in the background (`finding_joined`); the report waits for them.

The parent itself changes nothing in the account: like triage it keeps the evidence and waits for an analyst.
Before its report it reads back each child: status, when it was contained and how long that took, its decisions.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.sequences import (
        ChildIncidentsInput,
        SequenceFanout,
        SequenceFanoutInput,
        open_sequence_incidents,
        read_child_incidents,
        resource_words,
    )
    from irflow.models.finding import AffectedResource, Finding
    from irflow.models.incident import FindingDelivery
    from irflow.models.sequence import ChildIncident
    from irflow.models.sequence_parsing import MAX_SEQUENCE_RESOURCES

from workflows.activity_options import LOCAL, QUICK
from workflows.playbook import ContainmentPlan, IncidentContext
from workflows.policy import incident_severity
from workflows.triage_playbook import TriagePlaybook


def named_words(finding: Finding) -> str:
    """How many resources the sequence names, and how many of them irflow read."""
    named, read = finding.sequence_resources_named, len(finding.sequence_resources)
    if not named:
        return "the sequence names no resource: nothing to open"
    left_out = named - read
    return f"the sequence names {named} resource(s)" + (
        f"; {left_out} left out (unreadable, named twice, or beyond the first {MAX_SEQUENCE_RESOURCES})"
        if left_out
        else ""
    )


def fanout_words(fanout: SequenceFanout | None) -> list[str]:
    """What the fan-out did, one line per child, per resource not opened and per submission that failed."""
    if fanout is None:
        return ["the resources' incidents could not be opened (see the failed action): an analyst opens them"]
    if not fanout.enabled:
        return ["fan-out is off (IRFLOW_ATTACK_SEQUENCE_FANOUT=false): no incident is opened for the resources"]
    lines = [
        f"{'joined' if c.joined else 'opened'} incident {c.incident_id} ({c.playbook}) for {c.resource_type} "
        f"{c.resource_id}"
        for c in fanout.children
    ]
    failed = [
        f"not opened: {resource_words(f.resource)}: its incident could not be started ({f.error}): an analyst opens it"
        for f in fanout.failed
    ]
    return lines + [f"not opened: {why}" for why in fanout.not_opened] + failed


class SequencePlaybook(TriagePlaybook):
    name = "attack-sequence"
    contains = False

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        self.children: dict[str, ChildIncident] = {}  # by workflow id, as first seen
        # Every resource a fan-out was asked for (one whose submission failed leaves it: an update asks again).
        self.asked: list[AffectedResource] = []
        self.started = False
        self.reporting = False
        self.fanning_out: list[asyncio.Future] = []

    def _unasked(self, finding: Finding) -> Finding | None:
        """The finding naming only the resources no fan-out was asked for yet (now asked for), or None."""
        new = [r for r in finding.sequence_resources if r not in self.asked]
        self.asked.extend(new)
        return finding.model_copy(update={"sequence_resources": tuple(new)}) if new else None

    async def _fan_out(self, finding: Finding, raw_packed: str | None) -> SequenceFanout | None:
        """Open or join the incidents of the resources `finding` names; each child kept as first seen (a fan-out
        asked again answers 'joined' for the incident it opened the first time: the roll-up asks the child)."""
        incident = self.incident
        request = SequenceFanoutInput(
            incident_id=incident.incident_id,
            finding=finding,
            raw_packed=raw_packed,
            task_queue=workflow.info().task_queue,
        )
        # Local: the children's containment waits for nothing but this (docs/playbooks.md, "Attack sequences").
        fanout = await incident.try_act(open_sequence_incidents, request, LOCAL)
        unanswered = [f.resource for f in fanout.failed] if fanout else list(finding.sequence_resources)
        self.asked = [r for r in self.asked if r not in unanswered]
        for child in fanout.children if fanout else []:
            if child.workflow_id in self.children:
                continue
            self.children[child.workflow_id] = child
            incident.keep_child(child)  # workflows.record.IncidentRecord
            incident.note(
                f"{'joined' if child.joined else 'opened'} incident {child.incident_id} for {child.resource_type} "
                f"{child.resource_id}"
            )
        return fanout

    async def _fan_out_update(self, finding: Finding, raw_packed: str | None) -> None:
        fanout = await self._fan_out(finding, raw_packed)
        for line in fanout_words(fanout):
            if not line.startswith(("opened", "joined")):  # each child is noted as it is kept
                self.incident.note(f"sequence updated: {line}")

    def _update(self, finding: Finding, raw_packed: str | None) -> None:
        update = self._unasked(finding)
        if update is not None:
            self.incident.note(f"sequence updated: {len(update.sequence_resources)} new resource(s) named")
            self.fanning_out.append(self.incident.in_background(self._fan_out_update(update, raw_packed)))

    def finding_joined(self, delivery: FindingDelivery) -> None:
        """The sequence, updated (same id, more resources): the incidents of the resources it adds are opened in the
        background (the analyst is not kept waiting; the report is). One that joins before the analysis begins is
        opened by it; one after the report began is only noted."""
        if self.reporting:
            self.incident.note("sequence updated after the report began: its new resources are not opened")
        elif self.started:
            self._update(delivery.finding, delivery.raw_packed)

    async def analyse(self) -> ContainmentPlan:
        incident = self.incident
        finding = incident.finding
        self.started = True
        first = self._unasked(finding)
        for later in incident.findings[1:]:  # updates that joined before the analysis began
            self._update(later, None)
        fanout = await self._fan_out(first, incident.raw_packed) if first else SequenceFanout(enabled=True)
        reasons = [
            f"{finding.type}: severity {finding.severity_score} ({finding.severity})",
            named_words(finding),
            *fanout_words(fanout),
            "the sequence's own incident changes nothing in the account (each resource's incident contains it): "
            "irflow collects evidence and waits for an analyst",
        ]
        return ContainmentPlan(severity=incident_severity(incident.findings), requires_approval=False, reasons=reasons)

    async def before_report(self) -> None:
        """Each child as it stands now, for the report: its status, time to contain and decisions."""
        self.reporting = True
        await asyncio.gather(*self.fanning_out)
        if not self.children:
            return
        children = list(self.children.values())
        request = ChildIncidentsInput(incident_id=self.incident.incident_id, children=children)
        for child in await self.incident.try_act(read_child_incidents, request, QUICK) or []:
            self.incident.keep_child(child)
