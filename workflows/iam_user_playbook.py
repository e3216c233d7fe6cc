"""IAM user credentials (AccessKey findings about an IAM user).

Analyse: the user, their keys with last use, console password, MFA, groups and policies. Contain:
tag the user, deactivate the exposed key (never delete before approval), deny the user's sessions
issued before containment. Evidence: all of the above, inline policy documents, the credential-report
row. Eradicate (approval): delete the key and the console password.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.iam_user import (
        collect_iam_user_evidence,
        deactivate_access_key,
        describe_iam_user_context,
        remove_user_credentials,
        remove_user_session_revocation,
        restore_access_key_status,
        revoke_user_sessions,
    )
    from irflow.models.iam import IamUserContext, IamUserStepInput, IamUserTarget
    from irflow.models.incident import Eradication

from workflows.activity_options import LOCAL, QUICK
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import plan_iam_user_containment

IAM_USER_CONTAINMENT_STEPS = (
    TAG_STEP,
    ContainmentStep(deactivate_access_key, restore_access_key_status),
    ContainmentStep(revoke_user_sessions, remove_user_session_revocation),
)


class IamUserPlaybook(Playbook):
    name = "iam-user-credentials"
    containment_steps = IAM_USER_CONTAINMENT_STEPS
    # Independent steps, each a short idempotent call: all at once, as local activities (docs/playbooks.md).
    concurrent_containment = True
    containment_options = LOCAL

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        finding = incident.finding
        self.target = IamUserTarget(
            incident_id=incident.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            user_name=finding.resource.user_name or "",
            access_key_id=finding.resource.access_key_id,
        )
        self.context: IamUserContext | None = None

    def _step(self, issued_before=None) -> IamUserStepInput:
        return IamUserStepInput(target=self.target, prior=self.context, issued_before=issued_before)

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act(describe_iam_user_context, self.target, LOCAL)
        self.target = self.target.model_copy(update={"user_name": self.context.user_name})
        self.incident.keep_context(self.context)
        return plan_iam_user_containment(
            self.incident.findings, self.context, self.target.access_key_id, self.incident.policy
        )

    def containment_input(self) -> IamUserStepInput:
        return self._step(issued_before=workflow.now())  # one cut-off for every retry

    async def collect_evidence(self) -> None:
        evidence = await self.incident.try_act(collect_iam_user_evidence, self._step(), QUICK)
        if evidence:
            self.incident.add_evidence(evidence)

    async def eradicate(self, choice: Eradication) -> None:
        await self.incident.act(remove_user_credentials, self._step(), QUICK)
