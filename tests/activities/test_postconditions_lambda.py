"""The Lambda playbook's postcondition checks, against moto: each holds once its step ran, says what drifted when
someone undoes it from outside, and holds again once the step is re-applied. A deleted function or execution role
is gone, not drift."""

from __future__ import annotations

import boto3
import pytest

from activities.iam import revocation_policy_name
from activities.postconditions import POSTCONDITIONS
from activities.postconditions_lambda import check_revoke_function_role_sessions, check_throttle_function
from tests.activities.lambda_support import (
    INCIDENT_ID,
    _step,
    demo_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import act
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS

STEPS = {s.name: s for s in LAMBDA_CONTAINMENT_STEPS}
POLICY = revocation_policy_name(INCIDENT_ID)


@pytest.fixture
def contained(demo):
    step = _step(demo)
    for containment in STEPS.values():
        act(containment, step)
    return step


def test_every_check_fails_before_containment_and_holds_after(demo):
    step = _step(demo)
    for name, containment in STEPS.items():
        before = POSTCONDITIONS[name](containment.argument(step))
        assert (before.step, before.holds) == (name, False), name
    for containment in STEPS.values():
        act(containment, step)
    for name, containment in STEPS.items():
        after = POSTCONDITIONS[name](containment.argument(step))
        assert (after.holds, after.gone) == (True, []), f"{name}: {after.found}"


def test_concurrency_raised_or_deleted_from_outside_is_drift_until_throttled_again(demo, contained):
    lam = boto3.client("lambda", region_name=demo.region)
    lam.put_function_concurrency(FunctionName=demo.function_name, ReservedConcurrentExecutions=5)
    result = check_throttle_function(contained)
    assert result.holds is False
    assert result.found == f"Lambda function {demo.function_name} has reserved concurrency 5, not 0: it runs"
    assert result.resources == [demo.function_name]

    lam.delete_function_concurrency(FunctionName=demo.function_name)
    result = check_throttle_function(contained)
    assert result.holds is False and "has no reserved concurrency: it runs unthrottled" in result.found
    act(STEPS["throttle_function"], contained)
    assert check_throttle_function(contained).holds is True


def test_the_execution_roles_revocation_deleted_is_drift_until_revoked_again(demo, contained):
    boto3.client("iam").delete_role_policy(RoleName=demo.role_name, PolicyName=POLICY)
    result = check_revoke_function_role_sessions(contained)
    assert result.holds is False
    assert f"execution role {demo.role_name} lacks the revocation policy {POLICY}" in result.found
    assert result.resources == [demo.role_name]
    act(STEPS["revoke_function_role_sessions"], contained)
    assert check_revoke_function_role_sessions(contained).holds is True


def test_a_deleted_function_or_role_is_gone_not_drift(demo, contained):
    iam = boto3.client("iam")
    iam.delete_role_policy(RoleName=demo.role_name, PolicyName=POLICY)
    iam.delete_role(RoleName=demo.role_name)
    result = check_revoke_function_role_sessions(contained)
    assert (result.holds, result.gone) == (True, [demo.role_name])

    boto3.client("lambda", region_name=demo.region).delete_function(FunctionName=demo.function_name)
    result = check_throttle_function(contained)
    assert (result.holds, result.gone) == (True, [demo.function_name])
    assert "no longer exists" in result.found
