"""The attack-sequence playbook: a GuardDuty Extended Threat Detection finding (`AttackSequence:*`, always CRITICAL)
is the parent incident of the resources it names.

Analyse: at once, open (or join) one incident per resource the sequence names that a playbook answers (instances,
access keys, buckets...), through the listener's own path (`activities.sequences`): each is the incident a finding
about that resource would have opened, and its own playbook contains it. Resources no playbook answers are listed
in the plan's reasons, not opened. With IRFLOW_ATTACK_SEQUENCE_FANOUT off, nothing is opened.

The parent itself changes nothing in the account: like triage it keeps the evidence and waits for an analyst.
Before its report it reads back each child: status, when it was contained and how long that took, its decisions.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.sequences import (
        ChildIncidentsInput,
        SequenceFanout,
        SequenceFanoutInput,
        open_sequence_incidents,
        read_child_incidents,
    )
    from irflow.models.finding import Finding
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
    """What the fan-out did, one line per child and per resource not opened."""
    if fanout is None:
        return ["the resources' incidents could not be opened (see the failed action): an analyst opens them"]
    if not fanout.enabled:
        return ["fan-out is off (IRFLOW_ATTACK_SEQUENCE_FANOUT=false): no incident is opened for the resources"]
    lines = [
        f"{'joined' if c.joined else 'opened'} incident {c.incident_id} ({c.playbook}) for {c.resource_type} "
        f"{c.resource_id}"
        for c in fanout.children
    ]
    return lines + [f"not opened: {why}" for why in fanout.not_opened]


class SequencePlaybook(TriagePlaybook):
    name = "attack-sequence"
    contains = False

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        self.children: list[ChildIncident] = []

    async def analyse(self) -> ContainmentPlan:
        incident = self.incident
        finding = incident.finding
        request = SequenceFanoutInput(
            incident_id=incident.incident_id,
            finding=finding,
            raw_packed=incident.raw_packed,
            task_queue=workflow.info().task_queue,
        )
        # Local: the children's containment waits for nothing but this (docs/playbooks.md, "Attack sequences").
        fanout = (
            await incident.try_act(open_sequence_incidents, request, LOCAL)
            if finding.sequence_resources
            else SequenceFanout(enabled=True)  # nothing to open: no call
        )
        for child in fanout.children if fanout else []:
            self.children.append(child)
            incident.keep_child(child)  # workflows.record.IncidentRecord
            incident.note(
                f"{'joined' if child.joined else 'opened'} incident {child.incident_id} for {child.resource_type} "
                f"{child.resource_id}"
            )
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
        if not self.children:
            return
        request = ChildIncidentsInput(incident_id=self.incident.incident_id, children=self.children)
        for child in await self.incident.try_act(read_child_incidents, request, QUICK) or []:
            self.incident.keep_child(child)
