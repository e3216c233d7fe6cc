"""The triage-only playbook: for what irflow cannot contain safely (EKS, ECS, containers, runtime
findings without an instance, attack sequences, backups, root credentials...).

Enrich what can be enriched, keep the finding and the descriptions of what it names as evidence,
notify, and wait for an analyst. Nothing in the account is changed.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.triage import describe_related_resources
    from irflow.models.incident import TriageInput

from workflows.activity_options import QUICK
from workflows.playbook import ContainmentPlan, Playbook
from workflows.policy import incident_severity


class TriagePlaybook(Playbook):
    name = "triage-only"
    contains = False

    async def analyse(self) -> ContainmentPlan:
        incident = self.incident
        finding = incident.finding
        reasons = [
            f"{finding.type}: severity {finding.severity_score} ({finding.severity})",
            f"triage only: {incident.routing_reason or 'no containment playbook for this resource'}",
            "irflow collects evidence and waits for an analyst; nothing in the account is changed",
        ]
        return ContainmentPlan(severity=incident_severity(incident.findings), requires_approval=False, reasons=reasons)

    async def collect_evidence(self) -> None:
        request = TriageInput(incident_id=self.incident.incident_id, finding=self.incident.finding)
        described = await self.incident.try_act(describe_related_resources, request, QUICK)
        if described:
            self.incident.add_evidence(described)
