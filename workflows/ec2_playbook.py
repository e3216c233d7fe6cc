"""The EC2 instance playbook, as a responder would write it on the whiteboard.

Analyse: learn the instance (and its prior state, read side by side). Contain, all at once (each step is
independent, every undo registered before the first acts, each a local activity: docs/playbooks.md,
"Containment at the speed of the API"): tag, protect, detach from Auto Scaling, deregister from target
groups, isolate the network, cut the instance profile, revoke the role's sessions. Evidence: snapshots (each
digested, and copied into the forensic account when one is configured), metadata, console output, memory
(through the forensic egress after isolation, or before isolation with a deadline, or skipped: the policy's
`memory_capture`). Eradicate: stop (keep for forensics) or terminate, as the approving analyst chose.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

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
    from activities.ec2_context import enrich_instance_context, look_at_instance
    from activities.evidence import collect_console_output, collect_instance_metadata, snapshot_volumes
    from activities.iam import (
        remove_session_revocation,
        replace_instance_profile,
        restore_instance_profile,
        revoke_role_sessions,
    )
    from activities.load_balancing import deregister_from_target_groups, register_with_target_groups
    from activities.memory import acquire_memory
    from activities.report_wording import copy_text
    from activities.snapshots import SnapshotStep, copy_snapshot_to_forensic_account, digest_snapshot
    from irflow.models.ec2 import Ec2StepInput, Ec2Target, InstanceContext
    from irflow.models.evidence import EvidenceObject, MemoryCapture, MemoryCaptureResult, SnapshotEvidence
    from irflow.models.incident import Eradication

from workflows.activity_options import LOCAL, QUICK, SLOW, analysis_options
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import plan_ec2_containment

ISOLATION = ContainmentStep(isolate_network, restore_network)
EC2_CONTAINMENT_STEPS = (
    # Isolation first, alone, on the first look's interfaces; then the rest of the prior state is read, and the
    # other steps are taken all at once. Isolation no longer waits for protection and leaving the Auto Scaling
    # group: an isolated instance fails its load balancer's health checks and the group would replace it,
    # evidence and all, but only after several failed checks (tens of seconds at least), and the detach follows
    # within milliseconds. Undone in reverse: the network comes back last, a moment after the instance rejoins
    # its groups, too short for a health check to notice (docs/playbooks.md).
    ISOLATION,
    TAG_STEP,
    ContainmentStep(protect_instance, restore_instance_protection),
    ContainmentStep(detach_from_auto_scaling, reattach_to_auto_scaling),
    ContainmentStep(deregister_from_target_groups, register_with_target_groups),
    ContainmentStep(replace_instance_profile, restore_instance_profile),
    ContainmentStep(revoke_role_sessions, remove_session_revocation),
)
# Waiting for a snapshot (or its copy) to complete, then reading every block: hours for a large volume.
SNAPSHOT_WAIT = {**SLOW, "start_to_close_timeout": timedelta(hours=12)}
# Waiting for the instance to image its memory (IRFLOW_MEMORY_CAPTURE_WAIT_SECONDS), then hashing the image.
MEMORY_WAIT = {**SLOW, "start_to_close_timeout": timedelta(hours=4)}
SKIPPED_MEMORY = {
    MemoryCapture.SKIP: "no forensic egress (IRFLOW_FORENSIC_EGRESS): an isolated instance cannot reach SSM, and "
    "IRFLOW_MEMORY_WITHOUT_EGRESS=skip keeps isolation immediate rather than imaging memory first",
    MemoryCapture.OFF: "memory capture is turned off (IRFLOW_CAPTURE_MEMORY=false)",
}


class Ec2Playbook(Playbook):
    name = "ec2-instance"
    containment_steps = EC2_CONTAINMENT_STEPS
    concurrent_containment = True
    containment_options = LOCAL

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
        self.memory: asyncio.Future | None = None  # a capture started before isolation (background work)
        self.memory_late = False

    async def before_step(self, step: ContainmentStep) -> None:
        """Memory before isolation (no forensic egress, IRFLOW_MEMORY_WITHOUT_EGRESS=before-isolation): image it
        while the instance can still reach SSM, and isolate at the deadline whatever the capture is doing."""
        policy = self.incident.policy
        if step.activity is not isolate_network or policy.memory_capture != MemoryCapture.BEFORE_ISOLATION:
            return
        deadline = policy.memory_deadline
        # Background work: kept even when containment fails after this (the report waits for it).
        self.memory = self.incident.in_background(self.capture_memory())
        try:
            await workflow.wait_condition(self.memory.done, timeout=deadline)
        except TimeoutError:
            self.memory_late = True
            self.incident.note(f"memory capture passed its deadline ({deadline}): isolating regardless")

    async def analyse(self) -> ContainmentPlan:
        """One DescribeInstances decides (state, tags) and is enough to isolate. When an analyst must approve
        first, the rest is read now, so the question shows everything containment will change."""
        self.context = await self.incident.act(look_at_instance, self.target, LOCAL)
        plan = plan_ec2_containment(self.incident.findings, self.context, self.incident.policy)
        if plan.requires_approval:
            await self.enrich()
            plan = plan_ec2_containment(self.incident.findings, self.context, self.incident.policy)
        self.incident.keep_context(self.context)
        return plan

    async def enrich(self) -> None:
        """The rest of the prior state (Auto Scaling, target groups, profile, attributes, volumes' details), in
        history before the steps that change it take it (`analysis_options`). Isolation does not wait for it: its
        own prior state, from the first look, is recorded on the instance before it acts (`isolate_network`)."""
        if self.context is None or self.context.enriched:
            return
        step = Ec2StepInput(target=self.target, prior=self.context)
        self.context = await self.incident.act(enrich_instance_context, step, analysis_options())
        self.incident.keep_context(self.context)

    async def contain(self) -> None:
        """Isolation first, alone (nothing competes with it for the API), then the rest of the prior state, then
        every other step at once. With memory to image before isolation, isolation waits for that (up to its
        deadline) while the other steps go ahead."""
        isolation_input = self.containment_input()
        isolation = asyncio.ensure_future(self._prepare_and_take(ISOLATION, self._register(ISOLATION, isolation_input)))
        if self.incident.policy.memory_capture != MemoryCapture.BEFORE_ISOLATION:
            await isolation
        try:
            await self.enrich()
            await self.take_at_once(self.containment_steps[1:], self.containment_input())
        finally:
            await asyncio.gather(isolation, return_exceptions=True)  # never leave isolation behind a failure
        isolation.result()  # its failure, if it failed

    def containment_input(self) -> Ec2StepInput:
        # The revocation cut-off is fixed here, once, so every retry writes the identical policy.
        return Ec2StepInput(target=self.target, prior=self.context, issued_before=workflow.now())

    async def collect_evidence(self) -> None:
        incident, step = self.incident, Ec2StepInput(target=self.target, prior=self.context)
        jobs = [
            self.take_snapshots(step),
            incident.try_act(collect_instance_metadata, step, QUICK),
            incident.try_act(collect_console_output, self.target, QUICK),
        ]
        mode = incident.policy.memory_capture
        if mode == MemoryCapture.THROUGH_ENDPOINTS:
            jobs.append(self.capture_memory())
        elif self.memory is not None:
            jobs.append(self.memory)
        else:
            self.keep_memory(None)
        _, *objects = await asyncio.gather(*jobs)
        incident.add_evidence(*(item for item in objects if isinstance(item, EvidenceObject)))

    async def capture_memory(self) -> None:
        self.keep_memory(await self.incident.try_act(acquire_memory, self.target, MEMORY_WAIT))

    def keep_memory(self, capture: MemoryCaptureResult | None) -> None:
        """Record what became of memory, and exactly why when there is no image."""
        incident, mode = self.incident, self.incident.policy.memory_capture
        if capture is None:
            skipped = mode in SKIPPED_MEMORY
            capture = MemoryCaptureResult(
                status="NotCaptured" if skipped else "Failed",
                reason=SKIPPED_MEMORY.get(mode, "the capture activity failed (its action says how)"),
            )
        reason = capture.reason
        if self.memory_late and not capture.captured:
            reason = f"isolated at the capture's deadline, before it finished: {reason}"
        capture = capture.model_copy(update={"mode": mode, "isolated_at_deadline": self.memory_late, "reason": reason})
        incident.keep_memory_capture(capture)
        incident.add_evidence(*(e for e in (capture.evidence, capture.image) if e))
        if capture.image:
            incident.note(f"memory image SHA-256 {capture.image.sha256} ({capture.image.size} bytes, {capture.tool})")
        else:
            incident.note(f"memory not captured: {capture.reason}")

    async def take_snapshots(self, step: Ec2StepInput) -> None:
        """Snapshot every volume; then, in the background (a large volume takes hours to complete and read),
        digest each snapshot and copy it into the forensic account (each activity does nothing when its
        setting is off), the snapshots side by side. The analyst is asked meanwhile; the report waits."""
        incident = self.incident
        snapshots = await incident.try_act(snapshot_volumes, step, SLOW)
        if not snapshots:
            return
        incident.keep_snapshots(snapshots)
        incident.note(f"{len(snapshots)} snapshot(s): {', '.join(s.snapshot_id for s in snapshots)}")
        incident.in_background(self.secure_snapshots(snapshots))

    async def secure_snapshots(self, snapshots: list[SnapshotEvidence]) -> None:
        self.incident.keep_snapshots(list(await asyncio.gather(*(self.secure_snapshot(s) for s in snapshots))))

    async def secure_snapshot(self, snapshot: SnapshotEvidence) -> SnapshotEvidence:
        incident = self.incident
        digested = await incident.try_act(
            digest_snapshot, SnapshotStep(target=self.target, snapshot=snapshot), SNAPSHOT_WAIT
        )
        snapshot = digested or snapshot
        if digested and digested.sha256:
            incident.note(f"{snapshot.snapshot_id}: SHA-256 {snapshot.sha256} over {snapshot.block_count} block(s)")
        copied = await incident.try_act(
            copy_snapshot_to_forensic_account, SnapshotStep(target=self.target, snapshot=snapshot), SNAPSHOT_WAIT
        )
        if copied and copied.copy_snapshot_id:
            incident.note(f"{snapshot.snapshot_id} copied to {copy_text(copied)}")
        return copied or snapshot

    async def eradicate(self, choice: Eradication) -> None:
        activity = terminate_instance if choice == Eradication.TERMINATE else stop_instance
        await self.incident.act(activity, self.target, SLOW)
