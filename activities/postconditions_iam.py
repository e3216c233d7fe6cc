"""Postcondition checks of the IAM user and IAM role playbooks' steps, each taking the step's own argument.

A user, key or role deleted since containment is gone, not drift: a deleted key signs nothing, and a deleted
principal's sessions are worthless.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, typed_aws_errors
from activities.evidence import checked_identifier
from activities.iam_role import _iam as _role_iam
from activities.iam_user import _iam as _user_iam
from activities.postconditions_common import Verdict, check_read_only, check_revocation, check_role_revocation, is_gone
from irflow.models.iam import IamRoleStepInput, IamUserStepInput
from irflow.models.identifiers import IAM_ROLE_NAME, IAM_USER_NAME
from irflow.models.postconditions import Postcondition


@aws_activity(*check_read_only(("iam:ListAccessKeys",)))
def check_deactivate_access_key(step: IamUserStepInput) -> Postcondition:
    """The exposed access key is Inactive."""
    verdict = Verdict("deactivate_access_key")
    key_id, user = step.target.access_key_id, step.prior.user_name
    if not key_id or step.prior.key(key_id) is None:
        verdict.note("the finding names no access key of this user")
        return verdict.result()
    iam = _user_iam(step.target)
    checked_identifier(IAM_USER_NAME, user)
    try:
        with typed_aws_errors(f"read the access keys of {user}"):
            keys = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    except ApplicationError as error:
        if not is_gone(error):
            raise
        verdict.vanished(f"user {user} no longer exists: its keys went with it", user)
        return verdict.result()
    status = keys.get(key_id)
    if status is None:
        verdict.vanished(f"access key {key_id} of user {user} was deleted: it can no longer be used", key_id)
    elif status != "Inactive":
        verdict.drifted(f"access key {key_id} of user {user} is {status}, not Inactive", key_id, user)
    return verdict.result()


@aws_activity(*check_read_only(("iam:GetUserPolicy", "iam:GetUser")))
def check_revoke_user_sessions(step: IamUserStepInput) -> Postcondition:
    """The user carries the incident's deny-older-sessions policy, unchanged."""
    verdict = Verdict("revoke_user_sessions")
    iam, user = _user_iam(step.target), checked_identifier(IAM_USER_NAME, step.prior.user_name)
    check_revocation(
        verdict,
        f"user {user}",
        user,
        lambda policy: iam.get_user_policy(UserName=user, PolicyName=policy)["PolicyDocument"],
        lambda: iam.get_user(UserName=user),
        step.target.incident_id,
        step.issued_before,
    )
    return verdict.result()


@aws_activity(*check_read_only(("iam:GetRolePolicy", "iam:GetRole")))
def check_revoke_iam_role_sessions(step: IamRoleStepInput) -> Postcondition:
    """The role carries the incident's deny-older-sessions policy, unchanged."""
    verdict = Verdict("revoke_iam_role_sessions")
    iam, role = _role_iam(step.target), checked_identifier(IAM_ROLE_NAME, step.prior.role_name)
    check_role_revocation(verdict, iam, role, step.target.incident_id, step.issued_before)
    return verdict.result()
