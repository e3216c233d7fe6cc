"""Privilege escalation (ATT&CK TA0004): administrator policies attached or written inline, and policy
versions switched.

irflow's own rules, written like a team's (docs/rules.md); their test events are in privilege_escalation.events.json.
"""

from __future__ import annotations

from typing import Any

from irflow.detection.authoring import (
    IAM_SERVICE,
    Event,
    Severity,
    as_list,
    made_by_infrastructure_as_code,
    policy_statements,
    request_parameter,
    rule,
    succeeded,
)

_ADMIN_POLICIES = ("/AdministratorAccess", "/IAMFullAccess", "/PowerUserAccess")


def _allows_everything(policy: Any) -> bool:
    for statement in policy_statements(policy):
        actions = as_list(statement.get("Action"))
        resources = as_list(statement.get("Resource"))
        if statement.get("Effect") == "Allow" and ("*" in actions or "*:*" in actions) and "*" in resources:
            return True
    return False


@rule(
    id="irflow.iam.admin-policy-attached",
    title="Administrator policy attached to a user, role or group",
    severity=Severity.HIGH,
    finding_type="PrivilegeEscalation:IAMUser/AdministrativePermissions",
    sources={IAM_SERVICE},
    names={"AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy"},
)
def admin_policy_attached(event: Event) -> bool:
    return (
        succeeded(event)
        and not made_by_infrastructure_as_code(event)
        and str(request_parameter(event, "policyArn") or "").endswith(_ADMIN_POLICIES)
    )


@rule(
    id="irflow.iam.inline-admin-policy",
    title="Inline policy granting all actions on all resources",
    severity=Severity.HIGH,
    finding_type="PrivilegeEscalation:IAMUser/AdministrativePermissions",
    sources={IAM_SERVICE},
    names={"PutUserPolicy", "PutRolePolicy", "PutGroupPolicy", "CreatePolicyVersion", "CreatePolicy"},
)
def inline_admin_policy(event: Event) -> bool:
    return succeeded(event) and _allows_everything(request_parameter(event, "policyDocument"))


@rule(
    id="irflow.iam.policy-version-set-default",
    title="IAM policy default version changed",
    severity=Severity.MEDIUM,
    finding_type="PrivilegeEscalation:IAMUser/PolicyVersionChanged",
    sources={IAM_SERVICE},
    names={"SetDefaultPolicyVersion", "CreatePolicyVersion"},
)
def policy_version_set(event: Event) -> bool:
    if not succeeded(event):
        return False
    return event.get("eventName") == "SetDefaultPolicyVersion" or request_parameter(event, "setAsDefault") is True
