"""What the Lambda activity tests share: the demo function seeded in moto (with moto's Lambda made faithful
enough), its target and step input, and how to read an evidence object back.

The helpers keep the leading underscore they had as private helpers of test_lambda_function.py, so the
tests that moved out of it read exactly as before. The `demo` fixture is defined as `demo_fixture` and
registered under the name the tests ask for, so a test module imports it without its test arguments
shadowing the import.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from activities.lambda_function import describe_lambda_context
from irflow.devstack import moto_fidelity_lambda
from irflow.devstack.demo_lambda import DemoLambda, seed_lambda_function
from irflow.models.lambda_function import LambdaStepInput, LambdaTarget

INCIDENT_ID = "inc-lambda-0001"
CUTOFF = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture(name="demo")
def demo_fixture(workload) -> DemoLambda:
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
    return LambdaStepInput(target=_target(demo), prior=describe_lambda_context(_target(demo)), issued_before=CUTOFF)


def _evidence_body(evidence) -> bytes:
    return (
        boto3.client("s3")
        .get_object(Bucket=evidence.bucket, Key=evidence.key, VersionId=evidence.version_id)["Body"]
        .read()
    )
