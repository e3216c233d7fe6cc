"""Lambda activities against in-process moto: each step twice changes the function once, each undo
restores it exactly, evidence hashes match, eradication detaches exactly the outside triggers."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities import lambda_function as steps
from activities.iam import revocation_policy_name
from activities.tagging import restore_resource_tags, tag_resource
from irflow.devstack import moto_fidelity_lambda
from irflow.devstack.demo_lambda import (
    HANDLER_SOURCE,
    DemoLambda,
    deployment_package,
    observed_function,
    seed_lambda_function,
)
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.lambda_function import LambdaStepInput, LambdaTarget
from irflow.models.tagging import tag_request_for
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS

INCIDENT_ID = "inc-lambda-0001"
CUTOFF = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture
def demo(workload) -> DemoLambda:
    moto_fidelity_lambda.apply()
    return seed_lambda_function(workload.account_id, workload.region)


def _target(demo: DemoLambda, name: str | None = None) -> LambdaTarget:
    return LambdaTarget(
        incident_id=INCIDENT_ID,
        account_id=demo.account_id,
        region=demo.region,
        function_name=demo.function_name if name is None else name,
    )


def _step(demo: DemoLambda) -> LambdaStepInput:
    return LambdaStepInput(
        target=_target(demo), prior=steps.describe_lambda_context(_target(demo)), issued_before=CUTOFF
    )


def _evidence_body(evidence) -> bytes:
    return (
        boto3.client("s3")
        .get_object(Bucket=evidence.bucket, Key=evidence.key, VersionId=evidence.version_id)["Body"]
        .read()
    )


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
    step, before = _step(demo), observed_function(demo)
    argument = containment.argument(step)
    act, undo = containment.activity, containment.undo
    assert act(argument).changed is True
    contained = observed_function(demo)
    assert contained != before
    assert act(argument).changed is False
    assert observed_function(demo) == contained
    assert undo(argument).changed is True
    assert observed_function(demo) == before
    assert undo(argument).changed is False
    assert observed_function(demo) == before


def test_containment_is_observable(demo):
    step = _step(demo)
    for containment in LAMBDA_CONTAINMENT_STEPS:
        containment.activity(containment.argument(step))
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


def test_the_configuration_evidence_has_what_an_investigator_asks_for(demo):
    step = _step(demo)
    steps.throttle_function(step)
    evidence = steps.collect_lambda_evidence(step)
    raw = _evidence_body(evidence)
    assert hashlib.sha256(raw).hexdigest() == evidence.sha256
    assert evidence.kind == "lambda-function" and evidence.key.endswith(
        f"lambda/{demo.function_name}/configuration.json"
    )
    document = json.loads(raw)
    function = document["function"]
    assert function["Code"]["RepositoryType"] == "S3" and function["Code"]["Location"]
    assert function["Configuration"]["CodeSha256"] == demo.code_sha256
    assert function["Configuration"]["Environment"]["Variables"]["LOG_LEVEL"] == "info"
    assert document["prior"]["reserved_concurrency"] == 25 and document["reserved_concurrency"] == 0
    sids = {s["Sid"] for s in document["resource_policies"]["$function"]["Statement"]}
    assert sids == set(demo.outside_statement_ids + demo.own_statement_ids)
    assert "live" in document["resource_policies"]
    assert [m["UUID"] for m in document["event_source_mappings"]] == [demo.mapping_uuid]
    assert document["function_url"]["AuthType"] == "NONE"
    assert [a["Name"] for a in document["aliases"]] == ["live"]
    assert {v["Version"] for v in document["versions"]} == {"$LATEST", "1"}
    assert document["tags"] == {"app": "shop", "team": "media"}
    # moto does not implement provisioned concurrency: the error is recorded, the evidence still stored.
    assert "provisioned_concurrency" in document


def test_the_code_package_is_kept_and_matches_the_functions_code_sha256(demo):
    record, package = steps.collect_lambda_code(_step(demo))
    assert (record.kind, package.kind) == ("lambda-code", "lambda-code-package")
    body = _evidence_body(package)
    assert hashlib.sha256(body).hexdigest() == package.sha256
    assert base64.b64encode(hashlib.sha256(body).digest()).decode() == demo.code_sha256
    assert body == deployment_package()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("index.py").decode() == HANDLER_SOURCE
    summary = json.loads(_evidence_body(record))
    assert hashlib.sha256(_evidence_body(record)).hexdigest() == record.sha256
    assert summary["captured"] is True and summary["package_sha256"] == package.sha256
    assert summary["code_sha256"] == demo.code_sha256 and summary["repository_type"] == "S3"
    again = steps.collect_lambda_code(_step(demo))
    assert [(e.key, e.version_id) for e in again] == [
        (record.key, record.version_id),
        (package.key, package.version_id),
    ]


def test_a_package_that_cannot_be_fetched_is_recorded_with_the_reason(demo):
    with moto_fidelity_lambda.code_location_answers(403):
        stored = steps.collect_lambda_code(_step(demo))
    assert len(stored) == 1
    summary = json.loads(_evidence_body(stored[0]))
    assert summary["captured"] is False
    assert "HTTP 403" in summary["reason"]
    assert summary["location"] and summary["code_sha256"] == demo.code_sha256


def test_an_image_functions_code_is_named_by_its_digest(demo):
    image = f"{demo.account_id}.dkr.ecr.{demo.region}.amazonaws.com/resizer:latest"
    boto3.client("lambda", region_name=demo.region).create_function(
        FunctionName="resizer-image", Role=demo.role_arn, PackageType="Image", Code={"ImageUri": image}
    )
    target = _target(demo, "resizer-image")
    stored = steps.collect_lambda_code(LambdaStepInput(target=target, prior=steps.describe_lambda_context(target)))
    assert [e.kind for e in stored] == ["lambda-code"]
    summary = json.loads(_evidence_body(stored[0]))
    assert summary["captured"] is False and summary["repository_type"] == "ECR"
    assert "@sha256:" in summary["resolved_image_uri"] and summary["resolved_image_uri"] in summary["reason"]


def test_a_location_that_is_not_http_is_not_fetched():
    with pytest.raises(steps.CodeUnavailable, match="not an HTTP"):
        steps._download("file:///etc/passwd")


@pytest.mark.parametrize(
    ("principal", "outside"),
    [
        ({"Service": "s3.amazonaws.com"}, ["Service:s3.amazonaws.com"]),
        ("*", ["*"]),
        ({"AWS": "*"}, ["*"]),
        ({"AWS": "arn:aws:iam::111122223333:root"}, ["arn:aws:iam::111122223333:root"]),
        ({"AWS": "111122223333"}, ["111122223333"]),
        ({"AWS": "arn:aws:iam::123456789012:role/ops"}, []),
        ({"AWS": "123456789012"}, []),
        (
            {"AWS": ["arn:aws:iam::123456789012:root", "arn:aws:iam::444455556666:user/x"]},
            ["arn:aws:iam::444455556666:user/x"],
        ),
    ],
)
def test_who_is_outside_the_account(principal, outside):
    statement = {"Sid": "s", "Effect": "Allow", "Principal": principal, "Action": "lambda:InvokeFunction"}
    assert steps._outside_principals(statement, "123456789012") == outside


def test_deny_statements_are_never_outside_grants():
    assert steps._outside_principals({"Effect": "Deny", "Principal": "*"}, "123456789012") == []
    assert steps._outside_principals({"Effect": "Allow", "NotPrincipal": {"AWS": "x"}}, "123456789012")


def test_eradication_records_the_triggers_then_detaches_exactly_the_outside_ones(demo):
    step = _step(demo)
    for containment in LAMBDA_CONTAINMENT_STEPS:
        containment.activity(containment.argument(step))
    evidence = steps.record_lambda_triggers(step)
    raw = _evidence_body(evidence)
    assert hashlib.sha256(raw).hexdigest() == evidence.sha256
    document = json.loads(raw)
    assert document["mappings_to_disable"] == [demo.mapping_uuid]
    assert {s["sid"] for s in document["statements_to_remove"] if s["qualifier"] is None} == set(
        demo.outside_statement_ids
    )

    disabled = steps.disable_event_source_mappings(step)
    assert disabled.changed is True
    assert disabled.detail["disabled"] == [
        {"uuid": demo.mapping_uuid, "event_source_arn": demo.queue_arn, "prior_state": "Enabled"}
    ]
    assert steps.disable_event_source_mappings(step).changed is False

    removed = steps.remove_invoke_permissions(step)
    assert removed.changed is True
    assert {r["sid"] for r in removed.detail["removed"]} == set(demo.outside_statement_ids)
    assert steps.remove_invoke_permissions(step).changed is False

    seen = observed_function(demo)
    assert seen["mappings"] == {demo.mapping_uuid: "Disabled"}
    assert seen["policy_statements"] == sorted(demo.own_statement_ids)
    assert seen["reserved_concurrency"] == 0, "the function stays throttled"
    assert seen["code_sha256"] == demo.code_sha256, "the function and its code are kept"
    # First capture wins: recording again after the removal keeps what was there before it.
    again = steps.record_lambda_triggers(step)
    assert (again.key, again.version_id, again.sha256) == (evidence.key, evidence.version_id, evidence.sha256)
