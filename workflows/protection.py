"""What irflow never contains on its own: protected resources and principals, and irflow itself. Pure.

A resource is protected when one of its ARNs matches `IRFLOW_PROTECTED` or irflow's own principals (the
worker's identity, the member role, `IRFLOW_OWN_PRINCIPALS`), or when it is tagged `irflow:protected=true`.
Its incident opens, records the finding and collects nothing by force: containment waits for two different
approvers.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.intake.router import (
        EC2_PLAYBOOK,
        IAM_ROLE_PLAYBOOK,
        IAM_USER_PLAYBOOK,
        LAMBDA_PLAYBOOK,
        RDS_PLAYBOOK,
        S3_PLAYBOOK,
    )
    from irflow.models.finding import Finding
    from irflow.models.incident import IncidentState, ResponsePolicy

PROTECTED_TAG = "irflow:protected"
PROTECTED_APPROVALS = 2


def subject_arns(playbook: str, finding: Finding, resource_id: str, context: dict[str, Any]) -> list[str]:
    """The ARNs an incident's subject goes by (a role also by its sessions)."""
    p, account, region = finding.partition, finding.account_id, finding.region
    resource = finding.resource
    if playbook == EC2_PLAYBOOK:
        return [f"arn:{p}:ec2:{region}:{account}:instance/{resource_id}"]
    if playbook == IAM_USER_PLAYBOOK:
        name = context.get("user_name") or resource.user_name or resource_id
        return [f"arn:{p}:iam::{account}:user/{name}"]
    if playbook == IAM_ROLE_PLAYBOOK:
        name = context.get("role_name") or resource.user_name or resource_id
        return [f"arn:{p}:iam::{account}:role/{name}", f"arn:{p}:sts::{account}:assumed-role/{name}/session"]
    if playbook == S3_PLAYBOOK:
        return [f"arn:{p}:s3:::{bucket}" for bucket in resource.bucket_names or [resource_id]]
    if playbook == LAMBDA_PLAYBOOK:
        return [f"arn:{p}:lambda:{region}:{account}:function:{resource_id}"]
    if playbook == RDS_PLAYBOOK:
        return [f"arn:{p}:rds:{region}:{account}:db:{resource_id}"]
    return []


def _tags(state: IncidentState) -> dict[str, str]:
    if state.context is not None:
        return state.context.tags
    context = state.resource_context or {}
    tags = context.get("all_tags") or context.get("tags") or {}
    return tags if isinstance(tags, dict) else {}


def protection_reason(state: IncidentState, policy: ResponsePolicy) -> str | None:
    """Why this incident's subject must not be contained automatically, or None."""
    context = state.resource_context or {}
    arns = subject_arns(state.playbook, state.finding, state.resource_id, context)
    for arn in arns:
        for pattern in policy.own_principals:
            if fnmatchcase(arn, pattern):
                return f"{arn} is one of irflow's own principals ({pattern})"
        for pattern in policy.protected:
            if fnmatchcase(arn, pattern):
                return f"{arn} is protected (IRFLOW_PROTECTED {pattern})"
    if str(_tags(state).get(PROTECTED_TAG, "")).lower() == "true":
        return f"{state.resource_id} is tagged {PROTECTED_TAG}=true"
    return None
