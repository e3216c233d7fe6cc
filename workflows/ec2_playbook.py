"""The EC2 instance playbook, as a responder would write it on the whiteboard.

Analyse: learn the instance (and its prior state). Contain: tag, protect, detach from Auto Scaling,
deregister from target groups, isolate the network, cut the instance profile, revoke the role's
sessions — each with its undo registered first. Evidence: snapshots, metadata, console output,
memory. Eradicate: stop (keep for forensics) or terminate, as the approving analyst chose.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.autoscaling import detach_from_auto_scaling, reattach_to_auto_scaling
    from activities.ec2_containment import (
        isolate_network,
        protect_instance,
        restore_instance_protection,
        restore_network,
        stop_instance,
        terminate_instance,
    )
    from activities.ec2_context import describe_instance_context
    from activities.evidence import collect_console_output, collect_instance_metadata, snapshot_volumes
    from activities.iam import (
        remove_session_revocation,
        replace_instance_profile,
        restore_instance_profile,
        revoke_role_sessions,
    )
    from activities.load_balancing import deregister_from_target_groups, register_with_target_groups
    from activities.memory import acquire_memory
    from irflow.models.ec2 import Ec2StepInput, Ec2Target, InstanceContext
    from irflow.models.incident import Eradication, EvidenceObject, MemoryCaptureResult

from workflows.activity_options import QUICK, SLOW
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import plan_ec2_containment

EC2_CONTAINMENT_STEPS = (
    TAG_STEP,
    # Order matters: protection and leaving the Auto Scaling group come before isolation, because an
    # isolated instance fails its health checks and the group would terminate it, evidence and all.
    ContainmentStep(protect_instance, restore_instance_protection),
    ContainmentStep(detach_from_auto_scaling, reattach_to_auto_scaling),
    ContainmentStep(deregister_from_target_groups, register_with_target_groups),
    ContainmentStep(isolate_network, restore_network),
    ContainmentStep(replace_instance_profile, restore_instance_profile),
    ContainmentStep(revoke_role_sessions, remove_session_revocation),
)


class Ec2Playbook(Playbook):
    name = "ec2-instance"
    containment_steps = EC2_CONTAINMENT_STEPS

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        finding = incident.finding
        self.target = Ec2Target(
            incident_id=incident.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            instance_id=finding.resource.instance_id or "",
        )
        self.context: InstanceContext | None = None

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act(describe_instance_context, self.target, QUICK)
        self.incident.keep_context(self.context)
        return plan_ec2_containment(self.incident.findings, self.context, self.incident.policy)

    def containment_input(self) -> Ec2StepInput:
        # The revocation cut-off is fixed here, once, so every retry writes the identical policy.
        return Ec2StepInput(target=self.target, prior=self.context, issued_before=workflow.now())

    async def collect_evidence(self) -> None:
        incident, step = self.incident, Ec2StepInput(target=self.target, prior=self.context)
        jobs = [
            incident.try_act(snapshot_volumes, step, SLOW),
            incident.try_act(collect_instance_metadata, step, QUICK),
            incident.try_act(collect_console_output, self.target, QUICK),
        ]
        if incident.policy.capture_memory:
            jobs.append(incident.try_act(acquire_memory, self.target, SLOW))
        else:
            incident.note("memory capture disabled by policy")
        snapshots, *objects = await asyncio.gather(*jobs)
        if snapshots:
            incident.keep_snapshots(snapshots)
            incident.note(f"{len(snapshots)} snapshot(s): {', '.join(s.snapshot_id for s in snapshots)}")
        for item in objects:
            if isinstance(item, EvidenceObject):
                incident.add_evidence(item)
            elif isinstance(item, MemoryCaptureResult):
                incident.keep_memory_capture(item)
                incident.note(f"memory acquisition: SSM command {item.command_id} {item.status}")
                if item.evidence:
                    incident.add_evidence(item.evidence)

    async def eradicate(self, choice: Eradication) -> None:
        activity = terminate_instance if choice == Eradication.TERMINATE else stop_instance
        await self.incident.act(activity, self.target, SLOW)
