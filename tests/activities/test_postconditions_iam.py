"""The IAM user and IAM role playbooks' postcondition checks, against moto: each holds once its step ran, says
what drifted when someone undoes it from outside, and holds again once the step is re-applied. A deleted key,
user or role is gone, not drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from activities.iam import revocation_policy_name
from activities.iam_role import describe_iam_role_context
from activities.iam_user import describe_iam_user_context
from activities.postconditions import POSTCONDITIONS
from activities.postconditions_iam import (
    check_deactivate_access_key,
    check_revoke_iam_role_sessions,
    check_revoke_user_sessions,
)
from irflow.models.iam import IamRoleStepInput, IamRoleTarget, IamUserStepInput, IamUserTarget
from tests.support import act
from workflows.iam_role_playbook import IAM_ROLE_CONTAINMENT_STEPS
from workflows.iam_user_playbook import IAM_USER_CONTAINMENT_STEPS

INCIDENT_ID = "inc-iam-post-0001"
CUTOFF = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
POLICY = revocation_policy_name(INCIDENT_ID)
USER_STEPS = {s.name: s for s in IAM_USER_CONTAINMENT_STEPS}
ROLE_STEPS = {s.name: s for s in IAM_ROLE_CONTAINMENT_STEPS}


def user_step(workload, **overrides) -> IamUserStepInput:
    where = {
        "incident_id": INCIDENT_ID,
        "account_id": workload.account_id,
        "region": workload.region,
        "user_name": workload.iam_user,
        "access_key_id": workload.access_key_id,
    }
    target = IamUserTarget(**{**where, **overrides})
    return IamUserStepInput(target=target, prior=describe_iam_user_context(target), issued_before=CUTOFF)


def role_step(workload) -> IamRoleStepInput:
    target = IamRoleTarget(
        incident_id=INCIDENT_ID, account_id=workload.account_id, region=workload.region, role_name=workload.role_name
    )
    return IamRoleStepInput(target=target, prior=describe_iam_role_context(target), issued_before=CUTOFF)


def run_all(steps: dict, step) -> None:
    for containment in steps.values():
        act(containment, step)


@pytest.fixture
def user(workload) -> IamUserStepInput:
    step = user_step(workload)
    run_all(USER_STEPS, step)
    return step


@pytest.fixture
def role(workload) -> IamRoleStepInput:
    step = role_step(workload)
    run_all(ROLE_STEPS, step)
    return step


@pytest.mark.parametrize("steps, make", [(USER_STEPS, user_step), (ROLE_STEPS, role_step)], ids=["user", "role"])
def test_every_check_fails_before_containment_and_holds_after(workload, steps, make):
    step = make(workload)
    for name, containment in steps.items():
        before = POSTCONDITIONS[name](containment.argument(step))
        assert (before.step, before.holds) == (name, False), name
        assert before.found and before.resources, name
    run_all(steps, step)
    for name, containment in steps.items():
        after = POSTCONDITIONS[name](containment.argument(step))
        assert (after.holds, after.gone) == (True, []), f"{name}: {after.found}"


def test_a_key_made_active_again_is_drift_until_it_is_deactivated_again(workload, user):
    iam = boto3.client("iam")
    iam.update_access_key(UserName=workload.iam_user, AccessKeyId=workload.access_key_id, Status="Active")
    result = check_deactivate_access_key(user)
    assert result.holds is False
    assert result.found == f"access key {workload.access_key_id} of user {workload.iam_user} is Active, not Inactive"
    assert result.resources == [workload.access_key_id, workload.iam_user]
    act(USER_STEPS["deactivate_access_key"], user)
    assert check_deactivate_access_key(user).holds is True


def test_the_other_key_active_is_not_this_steps_drift(workload, user):
    assert boto3.client("iam").list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
    assert check_deactivate_access_key(user).holds is True  # the spare key is still Active: it was never exposed


def test_a_deleted_key_or_user_is_gone_not_drift(workload, user):
    iam = boto3.client("iam")
    iam.delete_access_key(UserName=workload.iam_user, AccessKeyId=workload.access_key_id)
    result = check_deactivate_access_key(user)
    assert (result.holds, result.gone) == (True, [workload.access_key_id])
    assert "was deleted" in result.found

    for key in iam.list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=workload.iam_user, AccessKeyId=key["AccessKeyId"])
    for policy in iam.list_user_policies(UserName=workload.iam_user)["PolicyNames"]:
        iam.delete_user_policy(UserName=workload.iam_user, PolicyName=policy)
    iam.delete_login_profile(UserName=workload.iam_user)
    iam.delete_user(UserName=workload.iam_user)
    for check in (check_deactivate_access_key, check_revoke_user_sessions):
        result = check(user)
        assert (result.holds, result.gone) == (True, [workload.iam_user]), check.__name__


def test_the_users_revocation_deleted_or_changed_is_drift(workload, user):
    iam = boto3.client("iam")
    iam.delete_user_policy(UserName=workload.iam_user, PolicyName=POLICY)
    result = check_revoke_user_sessions(user)
    assert result.holds is False
    assert f"user {workload.iam_user} lacks the revocation policy {POLICY}" in result.found
    assert result.resources == [workload.iam_user]
    act(USER_STEPS["revoke_user_sessions"], user)
    assert check_revoke_user_sessions(user).holds is True

    later = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=workload.iam_user, PolicyName=POLICY, PolicyDocument=json.dumps(later))
    result = check_revoke_user_sessions(user)
    assert result.holds is False and "is not the one containment wrote" in result.found
    act(USER_STEPS["revoke_user_sessions"], user)
    assert check_revoke_user_sessions(user).holds is True


def test_the_roles_revocation_deleted_is_drift_and_a_deleted_role_is_gone(workload, role):
    iam = boto3.client("iam")
    iam.delete_role_policy(RoleName=workload.role_name, PolicyName=POLICY)
    result = check_revoke_iam_role_sessions(role)
    assert result.holds is False
    assert result.found.startswith(f"role {workload.role_name} lacks the revocation policy {POLICY}")
    act(ROLE_STEPS["revoke_iam_role_sessions"], role)
    assert check_revoke_iam_role_sessions(role).holds is True

    for profile in iam.list_instance_profiles_for_role(RoleName=workload.role_name)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=role.prior.role_name
        )
    for policy in iam.list_role_policies(RoleName=workload.role_name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=workload.role_name, PolicyName=policy)
    for attached in iam.list_attached_role_policies(RoleName=workload.role_name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=workload.role_name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=workload.role_name)
    result = check_revoke_iam_role_sessions(role)
    assert (result.holds, result.gone) == (True, [workload.role_name])
    assert "no longer exists" in result.found


def test_a_user_step_without_an_exposed_key_has_nothing_to_hold(workload):
    step = user_step(workload, access_key_id=None)
    result = check_deactivate_access_key(step)
    assert result.holds is True and "names no access key" in result.found
