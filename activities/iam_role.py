"""IAM role sessions: revoke every session of a role issued before containment, and say which instances
carry the role (their incidents are opened by activities.incidents).

A role's temporary credentials cannot be deactivated one by one: the only lever is a deny-all policy
conditioned on `aws:TokenIssueTime` (what the console's "Revoke active sessions" writes). Fresh sessions
(an instance refreshing its credentials, a pipeline assuming the role again) keep working.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import unquote

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import INVALID_REQUEST, aws_activity, client, error_code, not_found, tag_pairs, typed_aws_errors
from activities.evidence import EVIDENCE_WRITE_ACTIONS, checked_identifier, store_evidence, to_json_bytes
from activities.iam import (
    ROLE_REVOCATION_ACTIONS,
    ROLE_REVOCATION_UNDO_ACTIONS,
    delete_role_revocation,
    put_role_revocation,
    revocation_cutoff,
    revocation_policy_name,
)
from irflow.models.evidence import EvidenceObject
from irflow.models.iam import IamRoleContext, IamRoleStepInput, IamRoleTarget
from irflow.models.identifiers import ACCOUNT_ID, IAM_ROLE_NAME, REGION
from irflow.models.incident import StepResult
from irflow.visibility import identity_hash

# Roles irflow must not (and IAM will not let it) change: AWS owns them.
_UNMODIFIABLE_PATHS = {
    "/aws-service-role/": "a service-linked role: AWS owns its policies",
    "/aws-reserved/sso.amazonaws.com/": "an IAM Identity Center role: revoke the user's sessions in Identity Center",
}
_ROLE_ID = re.compile(r"^(AROA[A-Z0-9]+)")


def managed_policy_document(iam, policy_arn: str) -> dict:
    """A managed policy's document: its default version's."""
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"]


def _iam(target: IamRoleTarget):
    """The client for the role's account; the names a finding gave are checked first (InvalidRequest, not
    retried): they reach IAM calls, policy documents and evidence keys."""
    checked_identifier(ACCOUNT_ID, target.account_id)
    checked_identifier(REGION, target.region)
    if target.role_name:
        checked_identifier(IAM_ROLE_NAME, target.role_name)
    return client("iam", target.region, target.account_id)


def _role_name(target: IamRoleTarget) -> str:
    """The finding's user name for an assumed role is the role's name; without it, the principal id's
    unique role id (AROA…) finds the role."""
    if target.role_name:
        return checked_identifier(IAM_ROLE_NAME, target.role_name)
    match = _ROLE_ID.match(target.principal_id or "")
    if not match:
        raise not_found(f"the finding names no role (principal {target.principal_id!r})")
    with typed_aws_errors(f"find the role with id {match.group(1)}"):
        for page in _iam(target).get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if role["RoleId"] == match.group(1):
                    return role["RoleName"]
    raise not_found(f"no role with id {match.group(1)} in account {target.account_id}")


def _unmodifiable(path: str) -> str | None:
    return next((why for prefix, why in _UNMODIFIABLE_PATHS.items() if path.startswith(prefix)), None)


def _instances_with_profiles(target: IamRoleTarget, profile_arns: set[str]) -> list[str]:
    if not profile_arns:
        return []
    ec2 = client("ec2", target.region, target.account_id)
    found = set()
    for page in ec2.get_paginator("describe_iam_instance_profile_associations").paginate():
        for association in page["IamInstanceProfileAssociations"]:
            if association.get("State") in ("associated", "associating") and (
                association["IamInstanceProfile"]["Arn"] in profile_arns
            ):
                found.add(association["InstanceId"])
    return sorted(found)


@aws_activity(
    "iam:GetRole",
    "iam:ListRoles",
    "iam:ListRoleTags",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "ec2:DescribeIamInstanceProfileAssociations",
)
def describe_iam_role_context(target: IamRoleTarget) -> IamRoleContext:
    """The role, its trust and permissions, and the instances that carry it, before anything changes."""
    iam, name = _iam(target), _role_name(target)
    with typed_aws_errors(f"describe IAM role {name}"):
        role = iam.get_role(RoleName=name)["Role"]
        trust = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(trust, str):
            trust = json.loads(unquote(trust))
        profiles = sorted(p["Arn"] for p in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"])
        last_used = role.get("RoleLastUsed") or {}
        return IamRoleContext(
            role_name=name,
            role_arn=role["Arn"],
            role_id=role["RoleId"],
            path=role.get("Path", "/"),
            created=role.get("CreateDate"),
            max_session_duration=role.get("MaxSessionDuration"),
            tags=tag_pairs(iam.list_role_tags(RoleName=name).get("Tags")),
            trust_policy=trust,
            attached_policies=sorted(
                p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            ),
            inline_policies=sorted(iam.list_role_policies(RoleName=name)["PolicyNames"]),
            last_used=last_used.get("LastUsedDate"),
            last_used_region=last_used.get("Region"),
            instance_profiles=profiles,
            instances_using_role=_instances_with_profiles(target, set(profiles)),
            unmodifiable_reason=_unmodifiable(role.get("Path", "/")),
            captured_at=datetime.now(UTC),
        )


@aws_activity(*ROLE_REVOCATION_ACTIONS)
def revoke_iam_role_sessions(step: IamRoleStepInput) -> StepResult:
    """Deny everything to every session of the role issued before the cut-off: the stolen credentials
    die now, whoever holds them; legitimate users get fresh ones the next time they assume the role."""
    if step.issued_before is None:
        raise ApplicationError("revoke_iam_role_sessions needs issued_before", type=INVALID_REQUEST, non_retryable=True)
    written = put_role_revocation(_iam(step.target), step.prior.role_name, step.target.incident_id, step.issued_before)
    return StepResult(
        changed=written,
        detail={
            "role": step.prior.role_name,
            "policy": revocation_policy_name(step.target.incident_id),
            "issued_before": revocation_cutoff(step.issued_before),
            "instances_refreshing": step.prior.instances_using_role,
        },
    )


@aws_activity(*ROLE_REVOCATION_UNDO_ACTIONS)
def remove_iam_role_session_revocation(step: IamRoleStepInput) -> StepResult:
    removed = delete_role_revocation(_iam(step.target), step.prior.role_name, step.target.incident_id)
    return StepResult(changed=removed, detail={"role": step.prior.role_name})


@aws_activity("iam:GetRolePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", *EVIDENCE_WRITE_ACTIONS)
def collect_iam_role_evidence(step: IamRoleStepInput) -> EvidenceObject:
    """The role before containment, with the documents of its inline and attached policies: what the
    stolen credentials could do."""
    iam, role = _iam(step.target), step.prior.role_name
    documents: dict[str, object] = {}
    with typed_aws_errors(f"collect evidence about role {role}"):
        for name in step.prior.inline_policies:
            documents[f"inline:{name}"] = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for arn in step.prior.attached_policies:
            try:
                documents[arn] = managed_policy_document(iam, arn)
            except ClientError as error:
                documents[arn] = {"error": error_code(error)}
    document = {
        "collected_at": datetime.now(UTC).isoformat(),
        "role": step.prior.model_dump(mode="json"),
        "session": {
            "principal_id": step.target.principal_id,
            "session_name": step.target.session_name,
            "access_key_id": step.target.access_key_id,
            "source_instances": step.target.source_instance_ids,
        },
        "policy_documents": documents,
    }
    # S3 keys are not encrypted: the role goes in by its hash, like the incident's other cleartext names
    key = f"iam/roles/{identity_hash(role)}.json"
    return store_evidence(step.target.incident_id, key, to_json_bytes(document), "iam-role")
