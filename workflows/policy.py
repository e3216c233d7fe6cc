"""Pure decisions about incidents, unit-tested without AWS or Temporal.

What irflow never contains on its own: a subject one of whose real ARNs (from its typed context) matches
`IRFLOW_PROTECTED` or irflow's own principals (the worker's identity, the member role,
`IRFLOW_OWN_PRINCIPALS`), or that is tagged `irflow:protected=true`. Its incident opens, records the finding
and changes nothing: containment waits for two different approvers (docs/threat-model.md).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from irflow.models.ec2 import InstanceContext
    from irflow.models.finding import Finding, Severity
    from irflow.models.iam import IamRoleContext, IamUserContext
    from irflow.models.incident import (
        DECISION_REQUESTS,
        Approver,
        Decision,
        DecisionKind,
        Eradication,
        PendingDecision,
        ResponsePolicy,
    )
    from irflow.models.proof import ProofRefused, VerifiedCaller, check_proof
    from irflow.own_principals import is_own_principal

from workflows.playbook import ContainmentPlan

PROTECTED_TAG = "irflow:protected"
PROTECTED_APPROVALS = 2


def incident_severity(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), key=lambda s: s.rank)


def protection(arns: Iterable[str], tags: dict[str, str], policy: ResponsePolicy, what: str) -> str | None:
    """Why a subject must not be contained without two different approvers, or None: one of its real ARNs is
    one of irflow's own principals or matches IRFLOW_PROTECTED, or it is tagged irflow:protected=true."""
    for arn in arns:
        if is_own_principal(arn, policy.own_principals):
            return f"{arn} is one of irflow's own principals"
        glob = next((pattern for pattern in policy.protected if fnmatch.fnmatchcase(arn, pattern)), None)
        if glob:
            return f"{arn} is protected (IRFLOW_PROTECTED {glob})"
    if tags.get(PROTECTED_TAG, "").lower() == "true":
        return f"{what} is tagged {PROTECTED_TAG}=true"
    return None


def approval_plan(
    findings: list[Finding], tags: dict[str, str], policy: ResponsePolicy, what: str, arns: Iterable[str]
) -> ContainmentPlan:
    """The start of every playbook's plan, by the same rules: the severity, whether containment waits for an
    analyst, or for two (a protected subject: `protection` of the ARNs and tags of its typed context), and
    why. The playbook adds to its `reasons` what containment will do."""
    finding = max(findings, key=lambda f: f.severity_score)
    severity = incident_severity(findings)
    reasons = [f"{finding.type}: GuardDuty severity {finding.severity_score} ({finding.severity})"]
    requires_approval = False
    if severity.rank < policy.auto_contain_min_severity.rank:
        requires_approval = True
        reasons.append(
            f"severity {severity} is below the auto-containment threshold {policy.auto_contain_min_severity}: "
            "containment waits for an analyst"
        )
    if tags.get(policy.manual_containment_tag, "").lower() == "manual":
        requires_approval = True
        reasons.append(f"{what} is tagged {policy.manual_containment_tag}=manual: containment waits for an analyst")
    if any(f.sample for f in findings):
        requires_approval = True
        reasons.append("GuardDuty marks this as a sample finding: containment waits for an analyst")
    protected = protection(arns, tags, policy, what)
    if protected:
        reasons.append(f"{protected}: never contained automatically; two different approvers decide")
    return ContainmentPlan(
        severity=severity,
        requires_approval=requires_approval or protected is not None,
        reasons=reasons,
        approvals_required=PROTECTED_APPROVALS if protected else 1,
        protected=protected is not None,
    )


def plan_ec2_containment(findings: list[Finding], context: InstanceContext, policy: ResponsePolicy) -> ContainmentPlan:
    arn = f"arn:{findings[0].partition}:ec2:{context.region}:{context.account_id}:instance/{context.instance_id}"
    plan = approval_plan(findings, context.tags, policy, "instance", [arn])
    reasons = plan.reasons
    if context.state != "running":
        reasons.append(f"instance is {context.state}, not running")
    if context.auto_scaling:
        reasons.append(
            f"member of Auto Scaling group {context.auto_scaling.group_name}: it will be detached with the desired "
            "capacity decremented, so no replacement launches while the incident is open"
        )
    if context.target_groups:
        reasons.append(f"registered in {len(context.target_groups)} target group(s): it will be deregistered")
    if context.instance_profile:
        roles = ", ".join(context.instance_profile.role_names) or "no role"
        reasons.append(
            f"instance profile {context.instance_profile.profile_name} ({roles}): profile replaced and sessions "
            "issued before containment revoked; other instances using the role refresh their credentials"
        )
    reasons.append(
        f"{len(context.network_interfaces)} network interface(s) in {', '.join(context.vpc_ids) or 'no VPC'} "
        f"will be isolated; {len(context.volumes)} volume(s) will be snapshotted"
    )
    return plan


def plan_iam_user_containment(
    findings: list[Finding], context: IamUserContext, access_key_id: str | None, policy: ResponsePolicy
) -> ContainmentPlan:
    plan = approval_plan(findings, context.tags, policy, "user", [context.user_arn])
    reasons = plan.reasons
    key = context.key(access_key_id)
    if key:
        reasons.append(f"access key {key.access_key_id} ({key.status}) will be deactivated, not deleted")
    else:
        reasons.append("the finding names no key of this user: no key is deactivated")
    reasons.append(
        f"sessions of {context.user_name} issued before containment will be denied; after approval the key "
        f"and the console password{' (present)' if context.has_login_profile else ''} are deleted"
    )
    if not context.mfa_devices:
        reasons.append("the user has no MFA device")
    return plan


def _role_arns(context: IamRoleContext, session_name: str | None) -> list[str]:
    """A role by its ARN (its path kept) and, when the finding names one, by the ARN of that session (STS's
    session ARNs carry the role's name, never its path)."""
    arns = [context.role_arn]
    if session_name:
        _, partition, _, _, account, _ = context.role_arn.split(":", 5)
        arns.append(f"arn:{partition}:sts::{account}:assumed-role/{context.role_name}/{session_name}")
    return arns


def plan_iam_role_containment(
    findings: list[Finding],
    context: IamRoleContext,
    session_name: str | None,
    related: list[str],
    policy: ResponsePolicy,
) -> ContainmentPlan:
    """`related`: the instances the credentials came from, whose incidents the playbook opens."""
    plan = approval_plan(findings, context.tags, policy, "role", _role_arns(context, session_name))
    reasons = plan.reasons
    if context.unmodifiable_reason:
        reasons.append(f"role {context.role_name} is {context.unmodifiable_reason}: triage only")
    else:
        reasons.append(
            f"every session of role {context.role_name} issued before containment will be denied; "
            "new sessions keep working"
        )
    if context.instances_using_role:
        reasons.append(
            f"{len(context.instances_using_role)} instance(s) carry the role and will fetch fresh "
            f"credentials: {', '.join(context.instances_using_role)}"
        )
    if related:
        reasons.append(f"the credentials came from an instance: incident(s) opened for {', '.join(related)}")
    return plan


def affected_principal(identities: list[str], findings: list[Finding]) -> str | None:
    """The identity of the decider (a name, an ARN, its user, role or session name, its unique id or access
    key, or one of their own `principals`) that a finding names."""
    named: set[str] = set()
    for finding in findings:
        resource = finding.resource
        for value in (resource.user_name, resource.principal_id, resource.access_key_id):
            if value:
                named.add(value.lower())
                named.add(value.lower().rsplit(":", 1)[-1])
    for identity in identities:
        if identity.lower() in named or identity.lower().rsplit("/", 1)[-1] in named:
            return identity
    return None


def approver_for(approvers: dict[str, Approver], arn: str) -> Approver | None:
    """What the verified principal `arn` may do: every entry whose ARN glob matches it, roles together."""
    matches = [
        a for pattern, a in approvers.items() if pattern.startswith("arn:") and fnmatch.fnmatchcase(arn, pattern)
    ]
    if not matches:
        return None
    roles = sorted({role for a in matches for role in a.roles})
    return Approver(roles=roles, principals=[p for a in matches for p in a.principals])


def proof_refusal(
    kind: DecisionKind, request: Any, policy: ResponsePolicy, incident_id: str, used: Collection[str], now: datetime
) -> str | None:
    """The cheap checks before STS is asked: a proof when one is required, used once, bound to this incident,
    this verb, these words and this choice, and fresh. (The host and the signature: `activities.identity`.)"""
    if request.proof is None:
        if policy.require_proof:
            return (
                "a decision needs a proof of who decides (irflow signs one with your AWS credentials); "
                "a name alone (--as) is taken only in demo mode (IRFLOW_DECISIONS_REQUIRE_PROOF=false)"
            )
        return None if request.by else "invalid request: by: who decides? send a proof (or, in demo mode, a name)"
    if request.proof.proof_id in used:
        return "this proof was already used for a decision: each proof is good for one decision, sign a new one"
    try:
        check_proof(
            request.proof,
            incident_id=incident_id,
            verb=str(kind),
            comment=request.words(),
            choice=request.choice(),
            now=now,
            max_age=policy.proof_max_age,
        )
    except ProofRefused as refused:
        return f"proof refused: {refused}"
    return None


def _moment_refusal(kind: DecisionKind, pending: PendingDecision | None, decided: bool, phase: str) -> str | None:
    """Whether this decision can be taken now, whoever takes it."""
    if kind == DecisionKind.NOTE:
        return None
    if pending is None:
        return f"no decision is pending (phase {phase})"
    if decided:
        return "a decision was already taken"
    if kind not in pending.options:
        return f"{kind} is not an option when deciding {pending.kind} ({', '.join(pending.options)})"
    return None


def decision_refusal(
    kind: DecisionKind,
    raw: Any,
    policy: ResponsePolicy,
    pending: PendingDecision | None,
    findings: list[Finding],
    decided: bool,
    phase: str,
    caller: VerifiedCaller | None = None,
    *,
    incident_id: str,
    used_proofs: Collection[str],
    now: datetime,
) -> tuple[Any, str | None]:
    """(the validated request or None, why the decision is refused or None): who may decide what, when.

    Without `caller`, a request with a proof gets the checks that need no identity (the proof's binding and
    freshness, whether the decision can be taken now); STS then verifies it, and the rule book is asked again
    with the verified `caller`, whose ARN is who decides. Without a proof, and only in demo mode, the name
    `by` is who decides."""
    try:
        request = DECISION_REQUESTS[kind].model_validate(raw)
    except ValidationError as error:
        return None, "invalid request: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()
        )
    if caller is None:
        refusal = proof_refusal(kind, request, policy, incident_id, used_proofs, now)
        if refusal or request.proof is not None:
            return request, refusal or _moment_refusal(kind, pending, decided, phase)
        who, approver, identities = request.by, policy.approvers.get(request.by), [request.by]
    else:
        who, approver, identities = caller.arn, approver_for(policy.approvers, caller.arn), caller.names()
    if approver is None:
        return request, f"{who!r} is not a configured approver (IRFLOW_APPROVERS)"
    if kind == DecisionKind.NOTE:
        return request, None
    if "approver" not in approver.roles:
        return request, f"{who} ({', '.join(approver.roles)}) may not {kind}: only approvers decide"
    affected = affected_principal([*identities, *approver.principals], findings)
    if affected:
        return request, f"{who} is {affected}, named in the finding: nobody decides their own incident"
    refusal = _moment_refusal(kind, pending, decided, phase)
    if refusal:
        return request, refusal
    if kind == DecisionKind.APPROVE and who in pending.approvals:
        return request, f"{who} already approved: a second, different approver is needed"
    return request, None


def approvals_required(stage: str, severity: Severity, policy: ResponsePolicy) -> int:
    """Eradication of an incident at or above `two_person_min_severity` needs two different approvers."""
    return 2 if stage == "eradication" and severity.rank >= policy.two_person_min_severity.rank else 1


def eradication_choice(approvals: list[Decision]) -> Eradication | None:
    """What the approvals of one stage chose to do: the latest approval that named a choice wins."""
    return next((d.eradication for d in reversed(approvals) if d.eradication), None)
