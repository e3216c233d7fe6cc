"""RDS DB instance (CredentialAccess:RDS/..., Discovery:RDS/...: logins and probing of a database).

Analyse: the instance (and its Aurora cluster) as RDS describes it: endpoint, public accessibility,
security groups, parameter and subnet groups, tags, each cluster member. Contain, each step with its
exact undo registered before it acts: tag; public accessibility off (every member of an Aurora
cluster); replace the security groups (the cluster's, for Aurora) by the VPC's quarantine group, which
has no rules; then snapshot (a cluster snapshot for Aurora) as evidence — the snapshot has no undo and
stays whatever happens. The network is cut before the snapshot because a successful login is live
access, and RDS may refuse changes while it is backing up. Evidence: the configuration before and now,
security group rules, parameters set in custom parameter groups, the snapshot, the database user the
finding names. Approval keeps it contained and stops it (ending the sessions a security-group change
leaves open); irflow never deletes a database or its snapshot, and never touches credentials inside the
engine: analysts rotate them. Rejection (or a failure at any step) restores tags, public accessibility
and security groups exactly.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.rds import (
        describe_db_instance_context,
        disable_db_public_access,
        quarantine_db_security_groups,
        restore_db_public_access,
        restore_db_security_groups,
        stop_db_instance,
    )
    from activities.rds_evidence import collect_db_instance_evidence, snapshot_db_instance
    from irflow.models.evidence import SnapshotEvidence
    from irflow.models.incident import Eradication, StepResult
    from irflow.models.rds import (
        DbInstanceContext,
        DbStepInput,
        DbTarget,
        db_instance_name,
        snapshot_identifier,
    )

from workflows.activity_options import QUICK, SLOW
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import approval_plan

# Evidence, not a change to undo: no undo is registered, the snapshot stays on rejection or failure.
SNAPSHOT_STEP = ContainmentStep(snapshot_db_instance, None)
RDS_CONTAINMENT_STEPS = (
    TAG_STEP,
    ContainmentStep(disable_db_public_access, restore_db_public_access),
    ContainmentStep(quarantine_db_security_groups, restore_db_security_groups),
    SNAPSHOT_STEP,
)


def plan_rds_containment(findings, context: DbInstanceContext, target: DbTarget, policy) -> ContainmentPlan:
    cluster_arns = [context.cluster.arn] if context.cluster else []
    arns = list(dict.fromkeys([context.db_instance_arn, *(m.arn for m in context.instances), *cluster_arns]))
    what = "DB instance or its Aurora cluster" if context.cluster else "DB instance"
    plan = approval_plan(findings, context.all_tags, policy, what, arns)
    reasons = plan.reasons
    snapshot = snapshot_identifier(target.incident_id)
    groups = ", ".join(context.security_groups) or "none"
    public = [m.identifier for m in context.instances if m.publicly_accessible]
    if context.cluster:
        cluster = context.cluster
        reasons.append(
            f"{context.db_instance_identifier} is a member of Aurora cluster {cluster.identifier} "
            f"({len(context.instances)} instance(s)): the cluster is contained as a whole"
        )
        reasons.append(
            f"publicly accessible: {', '.join(public) or 'none'}; every member is made private; the cluster's "
            f"security groups ({groups}) are replaced by the VPC's quarantine group; cluster snapshot {snapshot}"
        )
    else:
        reasons.append(
            f"DB instance {context.db_instance_identifier} ({context.engine} {context.engine_version or ''}) is "
            f"{'publicly accessible: it is made private' if context.publicly_accessible else 'not publicly accessible'}"
            f"; its security groups ({groups}) are replaced by the VPC's quarantine group; snapshot {snapshot}"
        )
    reasons.append(
        "the quarantine group has no rules: the application loses access too; connections already open "
        "survive the change until the database is stopped (on approval)"
    )
    if target.finding_cluster_identifier and (
        not context.cluster or context.cluster.identifier.lower() != target.finding_cluster_identifier.lower()
    ):
        reasons.append(
            f"the finding names cluster {target.finding_cluster_identifier}, RDS says "
            f"{context.cluster.identifier if context.cluster else 'no cluster'}: RDS is followed"
        )
    if context.read_replicas:
        reasons.append(f"read replicas {', '.join(context.read_replicas)} are not changed: contain them separately")
    if context.replica_source:
        reasons.append(f"a read replica of {context.replica_source}, which is not changed")
    if context.status != "available":
        reasons.append(f"the instance is {context.status}: RDS may refuse changes until it is available")
    user = target.db_user.get("user")
    if user:
        reasons.append(f"database user {user}: rotate its credentials (irflow does not change users inside the engine)")
    reasons.append("rejection restores tags, public accessibility and security groups exactly; the snapshot stays")
    return plan


class RdsPlaybook(Playbook):
    name = "rds-instance"
    containment_steps = RDS_CONTAINMENT_STEPS
    containment_options = SLOW  # RDS refuses changes while the database is busy: steps wait for it

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        finding = incident.finding
        self.target = DbTarget(
            incident_id=incident.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            db_instance_identifier=db_instance_name(finding.resource.resource_id or ""),
            finding_cluster_identifier=finding.resource.db_cluster_id,
            db_user=finding.resource.db_user,
        )
        self.context: DbInstanceContext | None = None

    def _step(self) -> DbStepInput:
        return DbStepInput(target=self.target, prior=self.context)

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act(describe_db_instance_context, self.target, QUICK)
        self.target = self.target.model_copy(update={"db_instance_identifier": self.context.db_instance_identifier})
        self.incident.keep_context(self.context)
        return plan_rds_containment(self.incident.findings, self.context, self.target, self.incident.policy)

    def containment_input(self) -> DbStepInput:
        return self._step()

    def step_failed(self, step: ContainmentStep) -> None:
        if step is SNAPSHOT_STEP:
            self.incident.note(
                f"snapshot {snapshot_identifier(self.target.incident_id)} may exist: it is evidence and is kept"
            )

    def step_done(self, step: ContainmentStep, result: StepResult) -> None:
        if step is not SNAPSHOT_STEP:
            return
        detail = result.detail
        snapshot = SnapshotEvidence(
            snapshot_id=detail["snapshot_id"],
            volume_id=detail["source"],  # what was imaged: the DB instance, or the Aurora cluster
            state=detail.get("status") or "creating",
            started_at=detail.get("created"),
        )
        self.incident.keep_snapshots([snapshot])
        self.incident.note(f"{detail['kind']} {snapshot.snapshot_id} of {snapshot.volume_id} ({snapshot.state})")

    async def collect_evidence(self) -> None:
        evidence = await self.incident.try_act(collect_db_instance_evidence, self._step(), QUICK)
        if evidence:
            self.incident.add_evidence(evidence)

    async def eradicate(self, choice: Eradication) -> None:
        what = (
            f"Aurora cluster {self.context.cluster.identifier}"
            if self.context.cluster
            else f"DB instance {self.target.db_instance_identifier}"
        )
        snapshot = snapshot_identifier(self.target.incident_id)
        if choice == Eradication.TERMINATE:
            self.incident.note(
                f"irflow never deletes a database: 'terminate' stops {what}; delete it yourself once forensics "
                f"are done (snapshot {snapshot} is kept)"
            )
        stopped = await self.incident.try_act(stop_db_instance, self._step(), SLOW)
        if stopped:
            self.incident.note(
                f"{what} is {stopped.detail.get('status')}: open sessions ended; RDS starts a stopped database "
                "again after 7 days, still private and quarantined"
            )
        else:
            self.incident.note(f"{what} could not be stopped: it stays contained (private, quarantined) and running")
        user = self.target.db_user.get("user")
        self.incident.note(
            f"{what} stays contained. Credentials are the analysts' to rotate: "
            f"{f'database user {user}, ' if user else ''}the master user, and any user or grant the attacker "
            "created; then restore network access deliberately (irflow will not undo containment after approval)"
        )
