"""S3 bucket (public access, policy changes, anomalous access).

Analyse: save the policy, ACL, public-access block, ownership and tags. Contain: tag, strip the
statements that grant access to everyone, block public access. Evidence: that configuration plus
versioning, logging and encryption. Approval keeps the bucket locked down; rejection restores the
saved configuration exactly.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.incident import Eradication, EvidenceObject, StepResult
    from irflow.models.s3 import BucketContext, BucketStepInput, BucketTarget

from workflows.activity_options import QUICK
from workflows.playbook import ContainmentPlan, ContainmentStep, Playbook
from workflows.policy import approval_reasons

S3_CONTAINMENT_STEPS = (
    ContainmentStep("tag_bucket", "restore_bucket_tags"),
    # The policy is rewritten before public access is blocked so that the undos run the other way
    # round: public access is unblocked first, else S3 refuses to put a public policy back.
    ContainmentStep("remove_public_policy_statements", "restore_bucket_policy"),
    ContainmentStep("block_bucket_public_access", "restore_bucket_public_access"),
)


class S3BucketPlaybook(Playbook):
    name = "s3-bucket"

    def __init__(self, incident) -> None:
        super().__init__(incident)
        finding = incident.request.finding
        buckets = finding.resource.bucket_names
        self.target = BucketTarget(
            incident_id=incident.request.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            bucket=buckets[0] if buckets else finding.resource.resource_id or "",
        )
        self.context: BucketContext | None = None

    def _step(self) -> BucketStepInput:
        return BucketStepInput(target=self.target, prior=self.context)

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act("describe_bucket_context", self.target, BucketContext, QUICK)
        self.incident.state.resource_context = self.context.model_dump(mode="json")
        findings = self.incident.state.findings_absorbed
        severity, requires_approval, reasons = approval_reasons(
            findings, self.context.tags, self.incident.request.policy, "bucket"
        )
        reasons.append(
            f"bucket {self.target.bucket}: statements granting access to everyone are removed and all four "
            "public-access-block settings turned on; the saved configuration is restored on rejection"
        )
        return ContainmentPlan(severity=severity, requires_approval=requires_approval, reasons=reasons)

    async def contain(self, saga) -> None:
        step = self._step()
        for containment in S3_CONTAINMENT_STEPS:
            saga.register(containment.activity, containment.undo, step)
            await self.incident.act(containment.activity, step, StepResult, QUICK)

    async def collect_evidence(self) -> None:
        evidence = await self.incident.try_act("collect_bucket_evidence", self._step(), EvidenceObject, QUICK)
        if evidence:
            self.incident.add_evidence(evidence)

    async def eradicate(self, choice: Eradication) -> None:
        self.incident.note(
            f"bucket {self.target.bucket} stays locked down; re-open it deliberately if it must be public"
        )
