"""Lambda function (Backdoor:Lambda/C&CActivity.B, CryptoCurrency:Lambda/BitcoinTool.B, Trojan:Lambda/...).

Analyse: the function, its reserved concurrency, tags, aliases, event source mappings, resource policy,
function URL and execution role (and which other functions share it). Contain: tag the function, set
its reserved concurrency to 0 (every invocation of every version and alias is throttled), deny the
execution role's sessions issued before containment (the function's environment holds those
credentials; compromised code may have sent them anywhere). Evidence: the full configuration with its
code location and CodeSha256, policies, mappings, URL, aliases and versions; the code package itself,
checked against CodeSha256, when it can be downloaded (the reason when not).

Eradicate (after approval), whichever eradication the analyst chose: first record every trigger in the
evidence, then disable every event source mapping (pull triggers: SQS, Kinesis, DynamoDB streams...;
disabled, not deleted, so their configuration and stream position survive) and remove every
resource-policy statement, of the function and of its aliases, that lets anyone outside the account
act on it: everyone (a public function URL), AWS services (push triggers: S3, SNS, EventBridge, API
Gateway...) and other accounts. Statements for the account's own principals stay: they need IAM
permissions in the account anyway, and the function stays at concurrency 0 whatever they do. The
function is never deleted and its code never changed: it is the evidence. Rejection (or a failure at
any containment step) restores tags, concurrency and the role exactly.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.lambda_evidence import collect_lambda_code, collect_lambda_evidence
    from activities.lambda_function import (
        describe_lambda_context,
        remove_function_role_revocation,
        restore_function_concurrency,
        revoke_function_role_sessions,
        throttle_function,
    )
    from activities.lambda_triggers import (
        disable_event_source_mappings,
        record_lambda_triggers,
        remove_invoke_permissions,
    )
    from irflow.models.incident import Eradication
    from irflow.models.lambda_function import LambdaContext, LambdaStepInput, LambdaTarget

from workflows.activity_options import LOCAL, QUICK, SLOW
from workflows.playbook import TAG_STEP, ContainmentPlan, ContainmentStep, IncidentContext, Playbook
from workflows.policy import approval_plan

LAMBDA_CONTAINMENT_STEPS = (
    TAG_STEP,
    ContainmentStep(throttle_function, restore_function_concurrency),
    ContainmentStep(revoke_function_role_sessions, remove_function_role_revocation),
)
# In this order: the triggers are saved before anything is removed.
LAMBDA_ERADICATION_STEPS = (record_lambda_triggers, disable_event_source_mappings, remove_invoke_permissions)
_NAMED = 5  # functions sharing the role named in the plan; the context lists them all


class LambdaPlaybook(Playbook):
    name = "lambda-function"
    containment_steps = LAMBDA_CONTAINMENT_STEPS
    # Independent steps, each a short idempotent call: all at once, as local activities (docs/playbooks.md).
    concurrent_containment = True
    containment_options = LOCAL

    def __init__(self, incident: IncidentContext) -> None:
        super().__init__(incident)
        finding = incident.finding
        self.target = LambdaTarget(
            incident_id=incident.incident_id,
            account_id=finding.account_id,
            region=finding.region,
            function_name=finding.resource.resource_id or "",
        )
        self.context: LambdaContext | None = None

    def _step(self, issued_before=None) -> LambdaStepInput:
        return LambdaStepInput(target=self.target, prior=self.context, issued_before=issued_before)

    async def analyse(self) -> ContainmentPlan:
        self.context = await self.incident.act(describe_lambda_context, self.target, LOCAL)
        self.target = self.target.model_copy(update={"function_name": self.context.function_name})
        self.incident.keep_context(self.context)
        plan = approval_plan(
            self.incident.findings, self.context.tags, self.incident.policy, "function", [self.context.function_arn]
        )
        plan.reasons.extend(self._consequences(self.context))
        return plan

    @staticmethod
    def _consequences(context: LambdaContext) -> list[str]:
        had = "none" if context.reserved_concurrency is None else str(context.reserved_concurrency)
        reasons = [
            f"function {context.function_name}: reserved concurrency set to 0 (it had {had}), so every invocation "
            "of every version and alias is throttled; asynchronous events are retried by Lambda up to their "
            "maximum age, then go to the failure destination or are dropped",
        ]
        role = f"sessions of execution role {context.role_name} issued before containment are denied"
        if context.role_shared_with:
            shared = context.role_shared_with
            named = ", ".join(shared[:_NAMED]) + (f" and {len(shared) - _NAMED} more" if len(shared) > _NAMED else "")
            role += f"; {len(shared)} other function(s) run under this role and lose their current credentials: {named}"
        reasons.append(role)
        if context.event_source_mappings:
            enabled = sum(1 for m in context.event_source_mappings if m.state not in ("Disabled", "Disabling"))
            reasons.append(
                f"{len(context.event_source_mappings)} event source mapping(s), {enabled} enabled: records wait in "
                "their source while the function is throttled; the mappings are disabled after approval"
            )
        if context.function_url_auth_type == "NONE":
            reasons.append("the function has a public function URL (auth NONE): throttled now")
        reasons.append(
            "after approval, resource-policy statements for everyone, AWS services and other accounts are "
            "removed (saved in the evidence first); the function is never deleted; rejection restores "
            "tags, concurrency and the role exactly"
        )
        return reasons

    def containment_input(self) -> LambdaStepInput:
        return self._step(issued_before=workflow.now())  # one cut-off for every retry

    async def collect_evidence(self) -> None:
        step = self._step()
        configuration, code = await asyncio.gather(
            self.incident.try_act(collect_lambda_evidence, step, QUICK),
            self.incident.try_act(collect_lambda_code, step, SLOW),
        )
        self.incident.add_evidence(*([configuration] if configuration else []), *(code or []))

    async def eradicate(self, choice: Eradication) -> None:
        step = self._step()
        # The triggers are saved before anything is removed: if they cannot be, nothing is removed.
        triggers = await self.incident.act(record_lambda_triggers, step, QUICK)
        self.incident.add_evidence(triggers)
        await self.incident.act(disable_event_source_mappings, step, QUICK)
        await self.incident.act(remove_invoke_permissions, step, QUICK)
        self.incident.note(
            f"function {self.target.function_name} ({choice} requested): triggers detached, reserved concurrency "
            "stays 0; the function and its code are kept as evidence, never deleted"
        )
