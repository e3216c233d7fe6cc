"""S3 bucket (public access, policy changes, anomalous access).

Analyse: save the policy, ACL, public-access block, ownership and tags. Contain: tag, strip the
statements that grant access to everyone, block public access. Evidence: that configuration plus
versioning, logging and encryption. Approval keeps the bucket locked down; rejection restores the
saved configuration exactly.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.s3_bucket import (
        block_bucket_public_access,
        collect_bucket_evidence,
        describe_bucket_context,
        remove_public_policy_statements,
        restore_bucket_policy,
        restore_bucket_public_access,
    )
    from irflow.models.incident import Eradication
    from irflow.models.s3 import BucketContext, BucketStepInput, BucketTarget

from workflows.activity_options import LOCAL, QUICK
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import approval_plan

S3_CONTAINMENT_STEPS = (
    TAG_STEP,
    # The policy is rewritten before public access is blocked so that the undos run the other way
    # round: public access is unblocked first, else S3 refuses to put a public policy back.
    ContainmentStep(remove_public_policy_statements, restore_bucket_policy),
    ContainmentStep(block_bucket_public_access, restore_bucket_public_access),
)


class S3BucketPlaybook(Playbook):
    name = "s3-bucket"
    containment_steps = S3_CONTAINMENT_STEPS
    # Independent steps, each a short idempotent call: all at once, as local activities (docs/playbooks.md).
    concurrent_containment = True
    containment_options = LOCAL

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        finding = incident.finding
        buckets = finding.resource.bucket_names
        self.target = BucketTarget(
            incident_id=incident.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            bucket=buckets[0] if buckets else finding.resource.resource_id or "",
        )
        self.context: BucketContext | None = None

    def _step(self) -> BucketStepInput:
        return BucketStepInput(target=self.target, prior=self.context)

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act(describe_bucket_context, self.target, LOCAL)
        self.incident.keep_context(self.context)
        arn = f"arn:{self.incident.finding.partition}:s3:::{self.context.bucket}"  # a bucket's ARN is its name
        plan = approval_plan(self.incident.findings, self.context.tags, self.incident.policy, "bucket", [arn])
        plan.reasons.append(
            f"bucket {self.target.bucket}: statements granting access to everyone are removed and all four "
            "public-access-block settings turned on; the saved configuration is restored on rejection"
        )
        return plan

    def containment_input(self) -> BucketStepInput:
        return self._step()

    async def collect_evidence(self) -> None:
        evidence = await self.incident.try_act(collect_bucket_evidence, self._step(), QUICK)
        if evidence:
            self.incident.add_evidence(evidence)

    async def eradicate(self, choice: Eradication) -> None:
        self.incident.note(
            f"bucket {self.target.bucket} stays locked down; re-open it deliberately if it must be public"
        )
