"""The worker's AWS clients: made once, from one session, and ready before the first incident needs them."""

from __future__ import annotations

import logging
import re
import time

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from temporalio.exceptions import ApplicationError

from activities import aws
from activities import aws as aws_module
from irflow.models import errors
from tests.support import REPO
from tests.workflows.faults import AwsFaults


def test_every_service_an_incident_calls_is_warmed_at_worker_start():
    """The readiness checks (activities/readiness_*.py) run on a schedule, not on an incident's path: their own
    services wait for their first round."""
    called = set()
    for path in (REPO / "activities").glob("*.py"):
        if not path.name.startswith("readiness"):
            called |= set(re.findall(r"\bclient\(\s*\"([a-z0-9-]+)\"", path.read_text()))
    assert {"ec2", "iam", "s3", "sns", "ssm", "guardduty"} <= called, "the scan found the activities' clients"
    assert called <= set(aws.WARM_SERVICES), f"not warmed: {sorted(called - set(aws.WARM_SERVICES))}"


def test_warmed_clients_are_the_ones_activities_get():
    aws.reset_clients()
    try:
        aws.warm_clients("eu-west-1", ("ec2", "iam"))
        ec2 = aws.client("ec2", "eu-west-1")
        assert ec2 is aws.client("ec2", "eu-west-1"), "cached, not made again"
        assert ec2.meta.region_name == "eu-west-1"
        assert aws.client("iam", "eu-west-1").meta.service_model.service_name == "iam"
        assert aws.client("ec2", "us-east-2") is not ec2, "another region is another client"
    finally:
        aws.reset_clients()


def test_clients_share_one_session_so_a_service_model_is_parsed_once():
    aws.reset_clients()
    try:
        first = aws.client("ec2", "us-east-1")
        second = aws.client("ec2", "us-west-2")
        assert first is not second
        # one parsed description serves both (a session per client parses ec2's ~MBs of model again)
        assert first.meta.service_model._service_description is second.meta.service_model._service_description
    finally:
        aws.reset_clients()


def test_a_service_that_cannot_be_made_is_skipped_with_a_warning(caplog):
    aws.reset_clients()
    try:
        with caplog.at_level(logging.WARNING, logger="irflow.aws"):
            seconds = aws.warm_clients("us-east-1", ("no-such-service", "sns"))
        assert seconds >= 0
        assert "could not prepare the no-such-service client" in caplog.text
        assert aws.client("sns", "us-east-1") is aws.client("sns", "us-east-1")
    finally:
        aws.reset_clients()


# --- typed failures (irflow.models.errors): what retrying cannot fix stops retries at once ---


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} said AWS"}}, "SomeOperation")


@pytest.mark.parametrize(
    "code, failure",
    [
        ("NoSuchEntity", errors.NOT_FOUND),
        ("InvalidInstanceID.NotFound", errors.NOT_FOUND),
        ("AccessDenied", errors.ACCESS_DENIED),
        ("UnauthorizedOperation", errors.ACCESS_DENIED),
        ("InvalidParameterValue", errors.INVALID_REQUEST),
        ("MalformedPolicyDocument", errors.INVALID_REQUEST),
    ],
)
def test_aws_errors_retrying_cannot_fix_are_typed_and_not_retried(code, failure):
    with pytest.raises(ApplicationError) as raised, aws.typed_aws_errors("isolate i-0a"):
        raise _client_error(code)
    assert raised.value.type == failure and raised.value.non_retryable
    refused = "SomeOperation refused: " if failure == errors.ACCESS_DENIED else ""  # the call to grant, by name
    assert raised.value.message == f"isolate i-0a: {refused}{code}: {code} said AWS"
    assert failure in errors.NON_RETRYABLE_TYPES


@pytest.mark.parametrize("code", ["Throttling", "RequestLimitExceeded", "InternalError", "ServiceUnavailable"])
def test_transient_aws_errors_are_left_for_temporal_to_retry(code):
    with pytest.raises(ClientError), aws.typed_aws_errors("isolate i-0a"):
        raise _client_error(code)


def test_a_request_botocore_refuses_to_send_is_invalid_and_not_retried():
    with pytest.raises(ApplicationError) as raised, aws.typed_aws_errors("describe bucket ''"):
        raise ParamValidationError(report='Invalid bucket name ""')
    assert raised.value.type == errors.INVALID_REQUEST and raised.value.non_retryable


@pytest.mark.parametrize("code", ["AuthorizationError", "AccessDeniedException", "InvalidClientTokenId"])
def test_every_way_aws_says_you_may_not_is_access_denied(code):
    """SNS says AuthorizationError, KMS AccessDeniedException: one list (aws.ACCESS_CODES) for every activity and
    every readiness check."""
    assert code in aws.ACCESS_CODES
    with pytest.raises(ApplicationError) as raised, aws.typed_aws_errors("publish"):
        raise _client_error(code)
    assert raised.value.type == errors.ACCESS_DENIED and raised.value.non_retryable
    assert aws.error_message(_client_error(code)) == f"{code} said AWS"


def _answered(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "SomeOperation"
    )


def test_what_may_pass_on_its_own_is_transient_and_a_refusal_is_not():
    assert aws.transient(_answered("Throttling", 400)) and aws.transient(_answered("RequestLimitExceeded", 503))
    assert aws.transient(_answered("SomethingNew", 500)) and aws.transient(_answered("SomethingNew", 429))
    assert aws.transient(EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com"))
    assert aws.transient(ReadTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com"))
    assert not aws.transient(_answered("AccessDenied", 403)) and not aws.transient(_answered("ValidationError", 400))
    assert not aws.transient(NoCredentialsError())
    wrapped = ApplicationError("cannot act in account 111122223333", type=errors.ACCESS_DENIED)
    wrapped.__cause__ = _answered("Throttling", 400)
    assert aws.transient(wrapped)
    wrapped.__cause__ = _answered("AccessDenied", 403)
    assert not aws.transient(wrapped)


@pytest.mark.usefixtures("aws")
def test_a_fresh_member_session_is_made_with_the_workers_retries_and_timeouts():
    """`assume` (behind every member client, and member_role.assumable's fresh session) gives the member role's
    keys; `make_client` makes an uncached client with the same retries and timeouts as the cached ones."""
    keys, expires = aws.assume("111122223333", None, "irflow-readiness", 900)
    assert set(keys) == {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
    assert expires > time.time()
    made = aws.make_client("iam", "us-east-1", keys)
    assert made is not aws.make_client("iam", "us-east-1", keys), "never cached"
    for configured in (made.meta.config, aws.client("iam", "us-east-1").meta.config):
        assert (configured.connect_timeout, configured.read_timeout) == (5, 30)
        assert configured.retries == {"mode": "standard", "total_max_attempts": 4}  # 3 retries
    caller = boto3.client("sts", region_name="us-east-1", **keys).get_caller_identity()
    assert caller["Arn"] == "arn:aws:sts::111122223333:assumed-role/irflow-responder/irflow-readiness"


# --- botocore's own retries: what may be sent twice, and what may not ---


def _vpc() -> str:
    return boto3.client("ec2", region_name="us-east-1").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]


def test_a_create_whose_answer_was_lost_is_not_sent_again(aws):  # noqa: F811 (the fixture, not the module)
    """The request reached AWS and the answer was lost: sent again, CreateSecurityGroup would answer Duplicate and
    CreateSnapshot make a second snapshot. The activity's own retry looks first (by tag) instead."""
    vpc = _vpc()
    faults = AwsFaults(rate=0).install()
    faults.lose_answers("ec2", "CreateSecurityGroup")
    with pytest.raises(ReadTimeoutError):
        aws_module.client("ec2", "us-east-1").create_security_group(GroupName="g", Description="d", VpcId=vpc)
    made = boto3.client("ec2", region_name="us-east-1").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["g"]}]
    )["SecurityGroups"]
    assert len(made) == 1 and faults.count(kind="lost answer") == 1


def test_a_call_that_sets_a_state_is_sent_again_when_its_answer_was_lost(aws):  # noqa: F811
    vpc = _vpc()
    faults = AwsFaults(rate=0).install()
    faults.lose_answers("ec2", "CreateTags")  # tags set to the same values twice end the same
    faults.lose_answers("ec2", "DescribeVpcs")
    ec2 = aws_module.client("ec2", "us-east-1")
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "k", "Value": "v"}])
    assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"] == [{"Key": "k", "Value": "v"}]
    assert faults.count(kind="lost answer") == 2


def test_a_create_aws_deduplicates_by_its_token_is_sent_again():
    model = boto3.session.Session().client("ec2", region_name="us-east-1").meta.service_model
    lost = ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com")
    assert aws_module._no_blind_repeat(operation=model.operation_model("RunInstances"), caught_exception=lost) is None
    with pytest.raises(ReadTimeoutError):
        aws_module._no_blind_repeat(operation=model.operation_model("CreateSnapshot"), caught_exception=lost)
    closed = ConnectionClosedError(endpoint_url="https://ec2.us-east-1.amazonaws.com")  # sent, then cut off
    with pytest.raises(ConnectionClosedError):
        aws_module._no_blind_repeat(operation=model.operation_model("CreateSecurityGroup"), caught_exception=closed)
    refused = ConnectTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com")  # never sent
    assert (
        aws_module._no_blind_repeat(operation=model.operation_model("CreateSnapshot"), caught_exception=refused) is None
    )
    throttled = _answered("RequestLimitExceeded", 503)  # never reached AWS: botocore retries it as it would
    assert (
        aws_module._no_blind_repeat(operation=model.operation_model("CreateSnapshot"), caught_exception=throttled)
        is None
    )
