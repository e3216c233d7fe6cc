"""Cut the instance's credentials: swap its instance profile, revoke the role's live sessions."""

from __future__ import annotations

import json
from datetime import UTC

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import INVALID_REQUEST, NOT_FOUND, aws_activity, client, error_code, typed_aws_errors
from activities.ec2_context import current_profile_association, describe_live_instance, profile_name_from_arn
from activities.evidence import checked_identifier
from irflow.models.ec2 import Ec2StepInput
from irflow.models.iam import REVOCATION_POLICY_PREFIX
from irflow.models.identifiers import IAM_ROLE_NAME, INCIDENT_ID
from irflow.models.incident import StepResult
from irflow.models.settings import get_settings


def _put_profile(ec2, current: dict | None, instance_id: str, profile: dict) -> None:
    """Make `profile` the instance's profile: replace the live association, or associate anew."""
    if current:
        ec2.replace_iam_instance_profile_association(IamInstanceProfile=profile, AssociationId=current["AssociationId"])
    else:
        ec2.associate_iam_instance_profile(IamInstanceProfile=profile, InstanceId=instance_id)


@aws_activity(
    "ec2:DescribeIamInstanceProfileAssociations",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "ec2:AssociateIamInstanceProfile",
    "ec2:DisassociateIamInstanceProfile",
    "iam:PassRole",
)
def replace_instance_profile(step: Ec2StepInput) -> StepResult:
    """Swap in the quarantine profile (IRFLOW_QUARANTINE_INSTANCE_PROFILE) or, without one, remove the
    profile, so the instance cannot fetch fresh credentials from its metadata service.

    An instance that had no profile gets the quarantine profile too: its role lets the SSM agent take the
    memory capture through the forensic endpoints, and grants nothing else."""
    quarantine = get_settings().quarantine_instance_profile
    had_none = step.prior.instance_profile is None
    if had_none and not quarantine:
        return StepResult(changed=False, detail={"reason": "instance has no instance profile"})
    ec2 = client("ec2", step.target.region, step.target.account_id)
    current = current_profile_association(ec2, step.target.instance_id)
    with typed_aws_errors(f"replace instance profile of {step.target.instance_id}"):
        if quarantine:
            if current and profile_name_from_arn(current["IamInstanceProfile"]["Arn"]) == quarantine:
                return StepResult(changed=False, detail={"profile": quarantine})
            _put_profile(ec2, current, step.target.instance_id, {"Name": quarantine})
            if had_none:
                return StepResult(
                    changed=True,
                    detail={"profile": quarantine, "reason": "instance had no profile: the SSM agent needs one"},
                )
            return StepResult(changed=True, detail={"profile": quarantine})
        if current is None:
            return StepResult(changed=False, detail={"profile": None})
        ec2.disassociate_iam_instance_profile(AssociationId=current["AssociationId"])
        return StepResult(changed=True, detail={"profile": None, "removed": current["IamInstanceProfile"]["Arn"]})


@aws_activity(
    "ec2:DescribeInstances",
    "ec2:DescribeIamInstanceProfileAssociations",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "ec2:AssociateIamInstanceProfile",
    "ec2:DisassociateIamInstanceProfile",
    "iam:PassRole",
)
def restore_instance_profile(step: Ec2StepInput) -> StepResult:
    """Put the instance's own profile back; one that had none loses the quarantine profile containment gave
    it (any other profile someone associated since is not irflow's to remove)."""
    prior = step.prior.instance_profile
    quarantine = get_settings().quarantine_instance_profile
    if prior is None and not quarantine:
        return StepResult(changed=False, detail={"reason": "instance had no instance profile"})
    describe_live_instance(step.target)
    ec2 = client("ec2", step.target.region, step.target.account_id)
    current = current_profile_association(ec2, step.target.instance_id)
    if prior is None:
        if not current or profile_name_from_arn(current["IamInstanceProfile"]["Arn"]) != quarantine:
            return StepResult(changed=False, detail={"reason": "instance had no instance profile"})
        with typed_aws_errors(f"remove the quarantine profile from {step.target.instance_id}"):
            ec2.disassociate_iam_instance_profile(AssociationId=current["AssociationId"])
        return StepResult(changed=True, detail={"profile": None, "removed": current["IamInstanceProfile"]["Arn"]})
    with typed_aws_errors(f"restore instance profile of {step.target.instance_id}"):
        if current and current["IamInstanceProfile"]["Arn"] == prior.profile_arn:
            return StepResult(changed=False, detail={"profile": prior.profile_arn})
        _put_profile(ec2, current, step.target.instance_id, {"Arn": prior.profile_arn})
    return StepResult(changed=True, detail={"profile": prior.profile_arn})


def revocation_policy_name(incident_id: str) -> str:
    """The incident's inline policy name; an incident id irflow could not have made is refused (InvalidRequest)."""
    return f"{REVOCATION_POLICY_PREFIX}{checked_identifier(INCIDENT_ID, incident_id)}"[:128]


def revocation_policy(issued_before) -> dict:
    # The same policy the IAM console's "Revoke active sessions" writes: deny everything to credentials
    # issued before the cut-off. Fresh credentials (issued to anyone after it) are unaffected.
    stamp = issued_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "IrflowRevokeOlderSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": stamp}},
            }
        ],
    }


ROLE_REVOCATION_ACTIONS = ("iam:GetRolePolicy", "iam:PutRolePolicy")
ROLE_REVOCATION_UNDO_ACTIONS = ("iam:DeleteRolePolicy",)


def put_role_revocation(iam, role: str, incident_id: str, issued_before) -> bool:
    """Attach (or confirm) the incident's deny-older-sessions policy on `role`; True when it was written.

    Used by every playbook that cuts a role's live credentials (instance, role session, Lambda)."""
    name = revocation_policy_name(incident_id)
    checked_identifier(IAM_ROLE_NAME, role)
    document = revocation_policy(issued_before)
    with typed_aws_errors(f"revoke sessions of role {role}"):
        try:
            existing = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            if (json.loads(existing) if isinstance(existing, str) else existing) == document:
                return False
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
    return True


def delete_role_revocation(iam, role: str, incident_id: str) -> bool:
    """Remove the incident's revocation policy from `role`; False when it was not there (or the role is gone)."""
    name = revocation_policy_name(incident_id)
    checked_identifier(IAM_ROLE_NAME, role)
    try:
        with typed_aws_errors(f"remove session revocation from {role}"):
            iam.delete_role_policy(RoleName=role, PolicyName=name)
    except ApplicationError as error:
        if error.type != NOT_FOUND:
            raise
        return False
    return True


def revocation_cutoff(issued_before) -> str:
    return revocation_policy(issued_before)["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]


@aws_activity(*ROLE_REVOCATION_ACTIONS)
def revoke_role_sessions(step: Ec2StepInput) -> StepResult:
    """Invalidate credentials the attacker may already hold (stolen from the metadata service).

    Other instances using the same role lose their current credentials too and pick up fresh ones at
    their next refresh; the report says which role was touched.
    """
    if step.prior.instance_profile is None or not step.prior.instance_profile.role_names:
        return StepResult(changed=False, detail={"reason": "no role behind the instance profile"})
    if step.issued_before is None:
        raise ApplicationError("revoke_role_sessions needs issued_before", type=INVALID_REQUEST, non_retryable=True)
    iam = client("iam", step.target.region, step.target.account_id)
    written = [
        role
        for role in step.prior.instance_profile.role_names
        if put_role_revocation(iam, role, step.target.incident_id, step.issued_before)
    ]
    return StepResult(
        changed=bool(written),
        detail={
            "roles": step.prior.instance_profile.role_names,
            "policy": revocation_policy_name(step.target.incident_id),
            "issued_before": revocation_cutoff(step.issued_before),
        },
    )


@aws_activity(*ROLE_REVOCATION_UNDO_ACTIONS)
def remove_session_revocation(step: Ec2StepInput) -> StepResult:
    if step.prior.instance_profile is None:
        return StepResult(changed=False, detail={"reason": "no role behind the instance profile"})
    iam = client("iam", step.target.region, step.target.account_id)
    removed = [
        role
        for role in step.prior.instance_profile.role_names
        if delete_role_revocation(iam, role, step.target.incident_id)
    ]
    return StepResult(
        changed=bool(removed),
        detail={"removed_from": removed, "policy": revocation_policy_name(step.target.incident_id)},
    )
