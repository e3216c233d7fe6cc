"""The EC2 instance playbook, as a responder would write it on the whiteboard.

Analyse: learn the instance (and its prior state). Contain: tag, protect, detach from Auto Scaling,
deregister from target groups, isolate the network, cut the instance profile, revoke the role's
sessions — each with its undo registered first. Evidence: snapshots, metadata, console output,
memory. Eradicate: stop (keep for forensics) or terminate, as the approving analyst chose.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.ec2 import Ec2StepInput, Ec2Target, InstanceContext
    from irflow.models.incident import (
        Eradication,
        EvidenceObject,
        MemoryCaptureResult,
        SnapshotEvidence,
        StepResult,
    )

from workflows.activity_options import QUICK, SLOW
from workflows.playbook import ContainmentPlan, ContainmentStep, Playbook
from workflows.policy import plan_ec2_containment

if TYPE_CHECKING:
    from workflows.incident import IncidentWorkflow


EC2_CONTAINMENT_STEPS = (
    # Order matters: protection and leaving the Auto Scaling group come before isolation, because an
    # isolated instance fails its health checks and the group would terminate it, evidence and all.
    ContainmentStep("tag_instance", "restore_instance_tags"),
    ContainmentStep("protect_instance", "restore_instance_protection"),
    ContainmentStep("detach_from_auto_scaling", "reattach_to_auto_scaling"),
    ContainmentStep("deregister_from_target_groups", "register_with_target_groups"),
    ContainmentStep("isolate_network", "restore_network"),
    ContainmentStep("replace_instance_profile", "restore_instance_profile"),
    ContainmentStep("revoke_role_sessions", "remove_session_revocation"),
)


class Ec2Playbook(Playbook):
    name = "ec2-instance"

    def __init__(self, incident: IncidentWorkflow) -> None:
        super().__init__(incident)
        self.quick, self.slow = QUICK, SLOW
        finding = incident.request.finding
        self.target = Ec2Target(
            incident_id=incident.request.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            instance_id=finding.resource.instance_id or "",
        )
        self.context: InstanceContext | None = None

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act("describe_instance_context", self.target, InstanceContext, self.quick)
        self.incident.state.context = self.context
        return plan_ec2_containment(self.incident.state.findings_absorbed, self.context, self.incident.request.policy)

    async def contain(self, saga) -> None:
        # The revocation cut-off is fixed here, once, so every retry writes the identical policy.
        step = Ec2StepInput(target=self.target, prior=self.context, issued_before=workflow.now())
        for containment in EC2_CONTAINMENT_STEPS:
            saga.register(containment.activity, containment.undo, step)
            await self.incident.act(containment.activity, step, StepResult, self.quick)

    async def collect_evidence(self) -> None:
        incident, step = self.incident, Ec2StepInput(target=self.target, prior=self.context)
        request = incident.request
        jobs = [
            incident.try_act("snapshot_volumes", step, list[SnapshotEvidence], self.slow),
            incident.try_act("collect_instance_metadata", step, EvidenceObject, self.quick),
            incident.try_act("collect_console_output", self.target, EvidenceObject, self.quick),
        ]
        if request.policy.capture_memory:
            jobs.append(incident.try_act("acquire_memory", self.target, MemoryCaptureResult, self.slow))
        else:
            incident.note("memory capture disabled by policy")
        results = await asyncio.gather(*jobs)
        snapshots, *objects = results
        if snapshots:
            incident.state.snapshots = snapshots
            incident.note(f"{len(snapshots)} snapshot(s): {', '.join(s.snapshot_id for s in snapshots)}")
        for item in objects:
            if isinstance(item, EvidenceObject):
                incident.add_evidence(item)
            elif isinstance(item, MemoryCaptureResult):
                incident.state.memory_capture = item
                incident.note(f"memory acquisition: SSM command {item.command_id} {item.status}")
                if item.evidence:
                    incident.add_evidence(item.evidence)

    async def eradicate(self, choice: Eradication) -> None:
        activity = "terminate_instance" if choice == Eradication.TERMINATE else "stop_instance"
        await self.incident.act(activity, self.target, StepResult, self.slow)
