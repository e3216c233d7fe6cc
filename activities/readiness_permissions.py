"""Readiness of the roles irflow acts as: the worker's role allows every IAM action the activities declare, and
in each member account the responder role can be assumed and allows the member actions.

Each required action is asked with the IAM policy simulator (iam:SimulatePrincipalPolicy) where it answers. Where
it does not (moto does not implement it; the worker may lack the permission), the role's attached and inline
policies are read and each action compared with their statements (activities/readiness_policy.py); the evidence
says which way was used. Actions that `irflow.iam_policy` scopes to resources are asked about such a resource
(an evidence object under incidents/, the capture document and an instance, a role passed to EC2), with the
request context its conditions test; every other action about `*`, any resource a finding may name: there, an
Allow naming some resources allows the action on some only (said, not missing), and a Deny naming some fails it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from shlex import quote
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from activities import readiness_policy
from activities.aws import (
    ACCESS_CODES,
    assume,
    client,
    error_code,
    make_client,
    member_role_arn,
    own_account_id,
    own_identity,
)
from activities.iam_role import managed_policy_document
from activities.readiness_common import (
    Verdict,
    described_error,
    failed,
    passed,
    readiness_check,
    unknown,
)
from irflow.models.readiness import ReadinessScope
from irflow.models.settings import IrflowSettings, get_settings
from irflow.models.tagging import INCIDENT_TAG

_ASSUMED_ROLE = re.compile(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/.+")
_SIMULATED_AT_ONCE = 50
_READ_ROLE = (
    "iam:GetRole",
    "iam:SimulatePrincipalPolicy",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
)
Probe = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]  # resources, (context key, value) pairs


def role_of(caller_arn: str) -> str | None:
    """The role an STS assumed-role session belongs to (`…:assumed-role/NAME/session` → `…:role/NAME`); None for
    anything else (a user, the root, a federated session). A role's path is not in the session's ARN: GetRole
    finds it."""
    found = _ASSUMED_ROLE.fullmatch(caller_arn)
    return f"arn:{found[1]}:iam::{found[2]}:role/{found[3]}" if found else None


def probes(settings: IrflowSettings, account_id: str, region: str) -> dict[str, Probe]:
    """The resource (and context) each action `irflow policy` scopes (irflow.iam_policy.SCOPED_ACTIONS; the tests
    hold the two together) is asked about; actions not named here are asked about `*`."""
    from irflow.iam_policy import EVIDENCE_OBJECT_ACTIONS  # imports `activities`: at call time

    partition = settings.aws_partition
    bucket = settings.evidence_bucket or "${EvidenceBucket}"
    evidence = ((f"arn:{partition}:s3:::{bucket}/incidents/readiness-probe/object",), ())
    instance = f"arn:{partition}:ec2:{region}:{account_id}:instance/i-0123456789abcdef0"
    document = f"arn:{partition}:ssm:{region}:{account_id}:document/{settings.memory_capture_document}"
    return {
        **dict.fromkeys(EVIDENCE_OBJECT_ACTIONS, evidence),
        "ssm:SendCommand": ((document, instance), ((f"ssm:resourceTag/{INCIDENT_TAG}", "readiness-probe"),)),
        "iam:PassRole": (
            (f"arn:{partition}:iam::{account_id}:role/readiness-probe",),
            (("iam:PassedToService", "ec2.amazonaws.com"), ("iam:AssociatedResourceArn", instance)),
        ),
    }


def _grouped(actions: list[str], scoped: dict[str, Probe]) -> Iterator[tuple[Probe, list[str]]]:
    groups: dict[Probe, list[str]] = {}
    for action in actions:
        groups.setdefault(scoped.get(action, (("*",), ())), []).append(action)
    for probe, names in groups.items():
        for start in range(0, len(names), _SIMULATED_AT_ONCE):
            yield probe, names[start : start + _SIMULATED_AT_ONCE]


def simulated_missing(iam: Any, role_arn: str, actions: list[str], scoped: dict[str, Probe]) -> list[str]:
    """The actions the IAM policy simulator does not allow the role."""
    missing = []
    for (resources, context), names in _grouped(actions, scoped):
        arguments: dict[str, Any] = {"PolicySourceArn": role_arn, "ActionNames": names}
        if resources != ("*",):
            arguments["ResourceArns"] = list(resources)
        if context:
            arguments["ContextEntries"] = [
                {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
                for key, value in context
            ]
        for page in iam.get_paginator("simulate_principal_policy").paginate(**arguments):
            for result in page["EvaluationResults"]:
                per_resource = [r["EvalResourceDecision"] for r in result.get("ResourceSpecificResults", [])]
                decisions = per_resource or [result["EvalDecision"]]
                if any(decision != "allowed" for decision in decisions):
                    missing.append(result["EvalActionName"])
    return missing


def role_documents(iam: Any, role_name: str) -> list[dict[str, Any]]:
    """The role's identity policies: each attached managed policy's default version, and each inline policy."""
    documents = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            documents.append(managed_policy_document(iam, attached["PolicyArn"]))
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            documents.append(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    return documents


def _boundary(iam: Any, role: dict[str, Any]) -> list[dict[str, Any]] | None:
    arn = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
    return [managed_policy_document(iam, arn)] if arn else None


class Compared(NamedTuple):
    """The role's policies read against the actions: what they do not allow, what a Deny forbids on some resources,
    what they allow only under conditions (not evaluated) and only on some resources."""

    missing: list[str]
    partly_denied: list[str]
    conditional: list[str]
    some_resources: list[str]


def compared_missing(iam: Any, role: dict[str, Any], actions: list[str], scoped: dict[str, Probe]) -> Compared:
    documents, boundary = role_documents(iam, role["RoleName"]), _boundary(iam, role)
    found = Compared([], [], [], [])
    for action in actions:
        resources = list(scoped.get(action, (("*",), ()))[0])
        decision = readiness_policy.decide_all(documents, action, resources, boundary)
        if decision.partly_denied and not decision.denied:
            found.partly_denied.append(action)
        elif not decision.allowed:
            found.missing.append(action)
        elif decision.conditional:
            found.conditional.append(action)
        elif decision.some_resources:
            found.some_resources.append(action)
    return found


def _why(error: Exception) -> str:
    """The simulator's failure in one short line (a server's error page can be long)."""
    if isinstance(error, ClientError):
        return described_error(error)
    first = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {first[:160]}"


def role_verdict(iam: Any, role_arn: str, actions: list[str], scoped: dict[str, Probe], fix: str) -> Verdict:
    """Whether the role allows every one of `actions`, by simulation, else by comparison with its policies."""
    name = role_arn.rsplit("/", 1)[-1]
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        return failed(f"role {role_arn} does not exist", fix)
    compared = Compared([], [], [], [])
    try:
        missing = simulated_missing(iam, role["Arn"], actions, scoped)
        method = "IAM policy simulation (iam:SimulatePrincipalPolicy)"
    except Exception as error:  # noqa: BLE001 (any way the simulator fails, the policies are read instead)
        compared = compared_missing(iam, role, actions, scoped)
        missing = compared.missing
        method = (
            f"comparison with the role's policies, the simulator being unavailable ({_why(error)}); "
            "conditions not evaluated, service control policies not seen"
        )
    partly = compared.partly_denied
    if missing or partly:
        found = [f"lacks {len(missing)} of {len(actions)} action(s): {', '.join(sorted(missing))}"] if missing else []
        if partly:
            found.append(f"is denied {', '.join(sorted(partly))} on some resources (a Deny naming them)")
        return failed(
            f"role {role['Arn']} {'; '.join(found)} ({method})",
            fix,
            problems=[f"{a}: not allowed" for a in missing] + [f"{a}: denied on some resources" for a in partly],
        )
    also = "".join(
        f"; {what}: {', '.join(sorted(names))}"
        for what, names in (
            ("allowed only under conditions", compared.conditional),
            ("allowed on some resources only", compared.some_resources),
        )
        if names
    )
    return passed(f"role {role['Arn']} allows all {len(actions)} declared action(s) ({method}){also}")


def _declared(member: bool) -> list[str]:
    from irflow.iam_policy import SECURITY_ACCOUNT_ONLY, declared_actions  # imports `activities`: at call time

    actions = declared_actions()
    return sorted(actions - SECURITY_ACCOUNT_ONLY if member else actions)


@readiness_check(
    "worker.permissions", "The worker's role allows every action the activities declare", *_READ_ROLE, reach="global"
)
def worker_permissions(scope: ReadinessScope) -> Verdict:
    """IRFLOW_WORKER_ROLE_ARN, or the role of the worker's own credentials, against every declared action."""
    settings = get_settings()
    role_arn = settings.worker_role_arn
    if not role_arn:
        caller = own_identity()["Arn"]
        role_arn = role_of(caller) or ""
        if not role_arn:
            return unknown(f"the worker's credentials are {caller}, not a role: set IRFLOW_WORKER_ROLE_ARN")
    if not re.fullmatch(r"arn:[\w-]+:iam::\d{12}:role/.+", role_arn):
        return unknown(f"IRFLOW_WORKER_ROLE_ARN {role_arn!r} is not a role's ARN (arn:aws:iam::<account>:role/<name>)")
    name = role_arn.rsplit("/", 1)[-1]
    account = role_arn.split(":")[4]
    fix = (
        f"irflow policy > worker-policy.json, then attach it to the role {name}: aws iam put-role-policy "
        f"--role-name {quote(name)} --policy-name irflow-worker --policy-document file://worker-policy.json"
    )
    scoped = probes(settings, account, settings.evidence_region or scope.region)
    return role_verdict(client("iam", None), role_arn, _declared(member=False), scoped, fix)


def _member_fix(account_id: str, settings: IrflowSettings) -> str:
    bucket = quote(settings.evidence_bucket) if settings.evidence_bucket else "<evidence bucket>"
    return (
        f"irflow policy --member-template > member-role.json, then in account {account_id}: aws cloudformation deploy "
        "--template-file member-role.json --stack-name irflow-member-role --capabilities CAPABILITY_NAMED_IAM "
        f"--parameter-overrides SecurityAccountId=<security account> EvidenceBucket={bucket} (a StackSet for many "
        "accounts)"
    )


def _security_account(scope: ReadinessScope) -> bool:
    return not scope.account_id or scope.account_id == own_account_id()


@readiness_check("member_role.assumable", "The member role can be assumed", "iam:GetRole", reach="member")
def member_role_assumable(scope: ReadinessScope) -> Verdict:
    """A fresh sts:AssumeRole of the member role (not the cached session activities use), and one read with the
    session it gives (iam:GetRole of the role itself): the worker can act in the account."""
    settings = get_settings()
    if _security_account(scope):
        return passed("the security account: the worker's own credentials act here, no role to assume")
    arn = member_role_arn(scope.account_id)
    fix = _member_fix(scope.account_id, settings)
    try:
        keys, _ = assume(scope.account_id, None, "irflow-readiness", 900)
    except ClientError as error:
        if error_code(error) not in ACCESS_CODES:
            raise
        return failed(f"assuming {arn} was refused: {described_error(error)}", fix)
    # A client of its own, made from the fresh credentials: the doorway's cached client would hide a role deleted
    # or untrusted since it was last assumed.
    try:
        make_client("iam", scope.region, keys).get_role(RoleName=settings.member_role_name)
    except ClientError as error:
        if error_code(error) not in ACCESS_CODES:
            raise
        return failed(f"assumed {arn}, but its session cannot read the role: {described_error(error)}", fix)
    return passed(f"assumed {arn} and acted with its session")


@readiness_check("member_role.permissions", "The member role allows every member action", *_READ_ROLE, reach="member")
def member_role_permissions(scope: ReadinessScope) -> Verdict:
    """The member role (through itself) against the actions the activities declare, but the evidence and
    notification writes, which only happen in the security account (as `irflow policy --member` grants)."""
    if _security_account(scope):
        return passed("the security account: see worker.permissions")
    settings = get_settings()
    iam = client("iam", None, scope.account_id)
    scoped = probes(settings, scope.account_id, scope.region)
    fix = _member_fix(scope.account_id, settings)
    return role_verdict(iam, member_role_arn(scope.account_id), _declared(member=True), scoped, fix)
