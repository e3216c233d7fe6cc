"""Lambda context and containment against in-process moto: each step twice changes the function once, each
undo restores it exactly (evidence and eradication have their own test files)."""

from __future__ import annotations

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities import lambda_function as steps
from activities.iam import revocation_policy_name
from activities.tagging import restore_resource_tags, tag_resource
from irflow.devstack import moto_fidelity_lambda
from irflow.devstack.demo_lambda import deployment_package, observed_function, seed_lambda_function
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.tagging import tag_request_for
from tests.activities.lambda_support import (
    INCIDENT_ID,
    _step,
    _target,
    demo_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import act, assert_step_contract
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS


def test_the_context_is_what_the_function_was(demo):
    context = steps.describe_lambda_context(_target(demo))
    assert context.function_arn == demo.function_arn
    assert context.role_arn == demo.role_arn
    assert context.role_name == demo.role_name, "the role's path is not part of its name"
    assert context.reserved_concurrency == 25
    assert context.tags == {"app": "shop", "team": "media"}
    assert context.aliases == ["live"]
    assert [(m.uuid, m.state) for m in context.event_source_mappings] == [(demo.mapping_uuid, "Enabled")]
    assert sorted(context.policy_statement_ids) == sorted(demo.outside_statement_ids + demo.own_statement_ids)
    assert context.function_url_auth_type == "NONE"
    assert context.environment_variable_names == ["LOG_LEVEL", "UPLOAD_BUCKET"]
    assert "info" not in context.model_dump_json(), "environment values stay out of workflow history"
    assert context.code_sha256 == demo.code_sha256
    assert context.role_shared_with == []


def test_other_functions_under_the_same_role_are_named(demo):
    boto3.client("lambda", region_name=demo.region).create_function(
        FunctionName="thumbnailer",
        Runtime="python3.12",
        Role=demo.role_arn,
        Handler="index.handler",
        Code={"ZipFile": deployment_package()},
    )
    assert steps.describe_lambda_context(_target(demo)).role_shared_with == ["thumbnailer"]


def test_a_missing_function_is_not_found_and_a_nameless_one_is_refused(demo):
    with pytest.raises(ApplicationError) as missing:
        steps.describe_lambda_context(_target(demo, "no-such-function"))
    assert missing.value.type == NOT_FOUND and missing.value.non_retryable
    with pytest.raises(ApplicationError) as nameless:
        steps.describe_lambda_context(_target(demo, ""))
    assert nameless.value.type == INVALID_REQUEST


@pytest.mark.parametrize("containment", LAMBDA_CONTAINMENT_STEPS, ids=lambda c: c.name)
def test_each_step_twice_changes_the_function_once_and_its_undo_restores_it_exactly(demo, containment):
    assert_step_contract(containment, _step(demo), lambda: observed_function(demo))


def test_containment_is_observable(demo):
    step = _step(demo)
    for containment in LAMBDA_CONTAINMENT_STEPS:
        act(containment, step)
    seen = observed_function(demo)
    assert seen["reserved_concurrency"] == 0
    assert seen["tags"] == {
        "app": "shop",
        "team": "media",
        "irflow:incident-id": INCIDENT_ID,
        "irflow:status": "contained",
    }
    assert seen["role_policies"] == [revocation_policy_name(INCIDENT_ID)]
    document = boto3.client("iam").get_role_policy(
        RoleName=demo.role_name, PolicyName=revocation_policy_name(INCIDENT_ID)
    )
    statement = document["PolicyDocument"]["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == "2025-03-14T09:26:53Z"
    # Containment leaves the triggers alone: they are detached only after approval.
    assert seen["mappings"] == {demo.mapping_uuid: "Enabled"}
    assert len(seen["policy_statements"]) == 4


def test_a_function_without_reserved_concurrency_gets_none_back(workload):
    moto_fidelity_lambda.apply()
    demo = seed_lambda_function(workload.account_id, workload.region, name="plain", reserved_concurrency=None)
    step = _step(demo)
    assert step.prior.reserved_concurrency is None
    steps.throttle_function(step)
    assert observed_function(demo)["reserved_concurrency"] == 0
    assert steps.restore_function_concurrency(step).changed is True
    assert observed_function(demo)["reserved_concurrency"] is None, "restored by deleting, not by putting a value"


def test_an_earlier_incidents_tag_is_put_back(demo):
    lam = boto3.client("lambda", region_name=demo.region)
    lam.tag_resource(Resource=demo.function_arn, Tags={"irflow:incident-id": "inc-earlier"})
    step, before = _step(demo), observed_function(demo)
    tag_resource(tag_request_for(step))
    assert observed_function(demo)["tags"]["irflow:incident-id"] == INCIDENT_ID
    restore_resource_tags(tag_request_for(step))
    assert observed_function(demo) == before


def test_a_deleted_execution_role_has_no_sessions_to_revoke(demo):
    step = _step(demo)
    boto3.client("iam").delete_role(RoleName=demo.role_name)
    result = steps.revoke_function_role_sessions(step)
    assert result.changed is False and "no longer exists" in result.detail["reason"]
    assert steps.remove_function_role_revocation(step).changed is False


def test_revocation_needs_a_cutoff(demo):
    step = _step(demo).model_copy(update={"issued_before": None})
    with pytest.raises(ApplicationError) as refused:
        steps.revoke_function_role_sessions(step)
    assert refused.value.type == INVALID_REQUEST
