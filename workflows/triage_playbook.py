"""The triage-only playbook: for what irflow cannot contain safely (EKS, ECS, containers, runtime
findings without an instance, attack sequences, backups, root credentials...).

Enrich what can be enriched, keep the finding and the descriptions of what it names as evidence,
notify, and wait for an analyst. Nothing in the account is changed.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.incident import EvidenceObject, TriageInput

from workflows.activity_options import QUICK
from workflows.playbook import ContainmentPlan, Playbook
from workflows.policy import incident_severity


class TriagePlaybook(Playbook):
    name = "triage-only"
    contains = False

    async def analyse(self) -> ContainmentPlan:
        request, state = self.incident.request, self.incident.state
        reasons = [
            f"{request.finding.type}: severity {request.finding.severity_score} ({request.finding.severity})",
            f"triage only: {request.routing_reason or 'no containment playbook for this resource'}",
            "irflow collects evidence and waits for an analyst; nothing in the account is changed",
        ]
        return ContainmentPlan(
            severity=incident_severity(state.findings_absorbed), requires_approval=False, reasons=reasons
        )

    async def collect_evidence(self) -> None:
        request = TriageInput(incident_id=self.incident.request.incident_id, finding=self.incident.request.finding)
        described = await self.incident.try_act("describe_related_resources", request, EvidenceObject, QUICK)
        if described:
            self.incident.add_evidence(described)
