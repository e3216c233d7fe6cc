"""Lambda evidence against in-process moto: the configuration an investigator asks for, and the code
package, kept only when it matches the function's CodeSha256 (the reason recorded when it cannot be)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

import boto3
import pytest

from activities import lambda_evidence as steps
from activities.lambda_function import describe_lambda_context, throttle_function
from irflow.devstack import moto_fidelity_lambda
from irflow.devstack.demo_lambda import HANDLER_SOURCE, deployment_package
from irflow.models.lambda_function import LambdaStepInput
from tests.activities.lambda_support import (
    _evidence_body,
    _step,
    _target,
    demo_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)


def test_the_configuration_evidence_has_what_an_investigator_asks_for(demo):
    step = _step(demo)
    throttle_function(step)
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
    stored = steps.collect_lambda_code(LambdaStepInput(target=target, prior=describe_lambda_context(target)))
    assert [e.kind for e in stored] == ["lambda-code"]
    summary = json.loads(_evidence_body(stored[0]))
    assert summary["captured"] is False and summary["repository_type"] == "ECR"
    assert "@sha256:" in summary["resolved_image_uri"] and summary["resolved_image_uri"] in summary["reason"]


def test_a_location_that_is_not_http_is_not_fetched():
    with pytest.raises(steps.CodeUnavailable, match="not an HTTP"):
        steps._download("file:///etc/passwd")
