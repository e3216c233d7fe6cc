"""IAM role sessions (AccessKey findings whose user type is AssumedRole, InstanceCredentialExfiltration).

Analyse: the role (found by name, or by the AROA id in the principal), its trust and permissions, the
instance profiles that carry it and the instances using them. Contain: tag the role, deny every session
issued before containment. Evidence: the role and its policy documents. When the finding says the
credentials came from an instance, that instance's incident is opened (or joined) too: the stolen
credentials are a symptom, the instance is where the attacker got them.

Roles AWS owns (service-linked, IAM Identity Center) cannot take an inline policy: those incidents are
triaged (evidence, notification, an analyst) instead of contained.
"""

from __future__ import annotations

import re

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.iam_role import (
        collect_iam_role_evidence,
        describe_iam_role_context,
        remove_iam_role_session_revocation,
        revoke_iam_role_sessions,
    )
    from activities.incidents import open_instance_incidents
    from irflow.models.iam import IamRoleContext, IamRoleStepInput, IamRoleTarget
    from irflow.models.incident import Eradication, RelatedIncidentsInput

from workflows.activity_options import LOCAL, QUICK
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import plan_iam_role_containment

IAM_ROLE_CONTAINMENT_STEPS = (
    TAG_STEP,
    ContainmentStep(revoke_iam_role_sessions, remove_iam_role_session_revocation),
)
# Without a named source instance, every instance carrying the role may be where the credentials
# leaked; beyond this many, the analyst picks (the evidence lists them all).
MAX_RELATED_INSTANCES = 10
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}([0-9a-f]{9})?$")


def source_instances(finding) -> list[str]:
    """Instances the finding says the credentials came from: its instance details, or an EC2 role
    session, whose session name is the instance id."""
    found = []
    resource = finding.resource
    if resource.instance_id and _INSTANCE_ID.match(resource.instance_id):
        found.append(resource.instance_id)
    session = resource.principal_id.split(":", 1)[1] if resource.principal_id and ":" in resource.principal_id else ""
    if _INSTANCE_ID.match(session) and session not in found:
        found.append(session)
    return found


class IamRolePlaybook(Playbook):
    name = "iam-role-sessions"
    containment_steps = IAM_ROLE_CONTAINMENT_STEPS
    # Independent steps, each a short idempotent call: all at once, as local activities (docs/playbooks.md).
    concurrent_containment = True
    containment_options = LOCAL

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        finding = incident.finding
        resource = finding.resource
        self.target = IamRoleTarget(
            incident_id=incident.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            role_name=resource.user_name or "",
            principal_id=resource.principal_id,
            access_key_id=resource.access_key_id,
            source_instance_ids=source_instances(finding),
        )
        self.context: IamRoleContext | None = None
        self.exfiltrated_from_instance = "InstanceCredentialExfiltration" in finding.type or bool(
            self.target.source_instance_ids
        )

    def _step(self, issued_before=None) -> IamRoleStepInput:
        return IamRoleStepInput(target=self.target, prior=self.context, issued_before=issued_before)

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act(describe_iam_role_context, self.target, LOCAL)
        self.target = self.target.model_copy(update={"role_name": self.context.role_name})
        self.incident.keep_context(self.context)
        if self.context.unmodifiable_reason:
            self.contains = False
        return plan_iam_role_containment(
            self.incident.findings,
            self.context,
            self.target.session_name,
            self._related_instances(),
            self.incident.policy,
        )

    def _related_instances(self) -> list[str]:
        if not self.exfiltrated_from_instance:
            return []
        if self.target.source_instance_ids:
            return list(self.target.source_instance_ids)
        using = self.context.instances_using_role if self.context else []
        return using[:MAX_RELATED_INSTANCES]

    def containment_input(self) -> IamRoleStepInput:
        return self._step(issued_before=workflow.now())  # one cut-off for every retry

    async def collect_evidence(self) -> None:
        evidence = await self.incident.try_act(collect_iam_role_evidence, self._step(), QUICK)
        if evidence:
            self.incident.add_evidence(evidence)
        await self._open_instance_incidents()

    async def _open_instance_incidents(self) -> None:
        instances = self._related_instances()
        if not instances:
            return
        using = self.context.instances_using_role if self.context else []
        if not self.target.source_instance_ids and len(using) > len(instances):
            self.incident.note(
                f"{len(using)} instances carry the role; incidents opened for the first {len(instances)} only"
            )
        request = RelatedIncidentsInput(
            incident_id=self.incident.incident_id,
            finding=self.incident.finding,
            raw_packed=self.incident.raw_packed,
            instance_ids=instances,
            task_queue=workflow.info().task_queue,
            reason=f"credentials of role {self.target.role_name} left this instance",
        )
        opened = await self.incident.try_act(open_instance_incidents, request, QUICK)
        for related in opened or []:
            verb = "joined" if related.joined else "opened"
            self.incident.note(f"{verb} incident {related.incident_id} for instance {related.instance_id}")
            self.incident.keep_related_incident(related.workflow_id)

    async def eradicate(self, choice: Eradication) -> None:
        self.incident.note(
            f"role {self.target.role_name}: the deny policy stays (it only affects sessions issued before "
            "containment); review the role's trust policy and who can assume it"
        )
