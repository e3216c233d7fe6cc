"""A readiness check never raises for what it finds: whatever keeps it from looking (AccessDenied, a member role
that cannot be assumed, a call the endpoint does not implement) is `unknown` at once, with the reason. What may pass
on its own (throttling, a 5xx, a service not answering) is raised for Temporal to retry, and is `unknown` where
nobody retries (`irflow preflight`). The errors come from botocore's Stubber (the service's own error shapes) or a
client that cannot connect."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError

from activities import aws as aws_module
from activities import readiness_account
from activities.aws import client
from activities.readiness import run_aws_checks
from activities.readiness_account import guardduty_enabled
from activities.readiness_common import failed, readiness_check
from activities.readiness_evidence import evidence_bucket_object_lock, kms_keys, sns_topics
from irflow.models.readiness import CheckStatus, ReadinessScope
from tests.support import setting

REGION = "us-east-1"
SCOPE = ReadinessScope(account_id="", region=REGION)


@pytest.fixture
def configured(aws, monkeypatch):
    setting(
        monkeypatch,
        evidence_bucket="evidence-bucket",
        evidence_kms_key_id="1234abcd-12ab-34cd-56ef-1234567890ab",
        notify_topic_arn=f"arn:aws:sns:{REGION}:123456789012:irflow-incidents",
        security_account_id="123456789012",
    )


@pytest.mark.parametrize(
    "check, service, operation, code",
    [
        (guardduty_enabled, "guardduty", "list_detectors", "AccessDeniedException"),
        (evidence_bucket_object_lock, "s3", "get_object_lock_configuration", "AccessDenied"),
        (kms_keys, "kms", "describe_key", "AccessDeniedException"),
        (sns_topics, "sns", "get_topic_attributes", "AuthorizationError"),
    ],
)
def test_access_denied_is_unknown_with_the_reason(configured, check, service, operation, code):
    with Stubber(client(service, REGION)) as stub:
        stub.add_client_error(operation, code, "User is not authorized to perform this action", 403)
        result = check(SCOPE)
        stub.assert_no_pending_responses()
    assert result.status == CheckStatus.UNKNOWN
    assert code in result.evidence and not result.fix
    assert result.check == check.check_id and result.title == check.title


def test_a_service_that_does_not_answer_is_retried_by_temporal_and_unknown_where_nobody_retries(
    configured, monkeypatch
):
    dead = boto3.session.Session().client(
        "guardduty",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    monkeypatch.setattr(readiness_account, "client", lambda *_: dead)
    with pytest.raises(EndpointConnectionError):
        guardduty_enabled(SCOPE)  # as an activity: Temporal retries it
    [result] = run_aws_checks(SCOPE, checks=[guardduty_enabled])
    assert result.status == CheckStatus.UNKNOWN
    assert "AWS did not answer" in result.evidence
    assert (result.check, result.title, result.required) == ("guardduty.enabled", guardduty_enabled.title, True)


@pytest.mark.parametrize(
    "code, status",
    [("ThrottlingException", 400), ("TooManyRequestsException", 429), ("InternalServerErrorException", 500)],
)
def test_a_throttled_or_failing_call_is_raised_for_temporal_to_retry(configured, code, status):
    """One blip must not flap the check to unknown and back (a notification each way): the activity fails, Temporal
    retries it, and only an activity that still fails becomes unknown (workflows/readiness.py)."""
    with Stubber(client("guardduty", REGION)) as stub:
        stub.add_client_error("list_detectors", code, "slow down", status)
        with pytest.raises(ClientError) as raised:
            guardduty_enabled(SCOPE)
        stub.add_client_error("list_detectors", code, "slow down", status)
        [result] = run_aws_checks(SCOPE, checks=[guardduty_enabled])
    assert raised.value.response["Error"]["Code"] == code
    assert result.status == CheckStatus.UNKNOWN and code in result.evidence


def test_a_global_check_that_errors_where_nobody_retries_names_the_security_account(configured):
    with Stubber(client("kms", REGION)) as stub:
        stub.add_client_error("describe_key", "KMSInternalException", "try again", 500)
        [result] = run_aws_checks(SCOPE, checks=[kms_keys])
    assert (result.status, result.account_id, result.region) == (CheckStatus.UNKNOWN, "123456789012", "")


def test_a_member_role_that_cannot_be_assumed_is_unknown_for_the_checks_behind_it(monkeypatch):
    def refused(*_):
        raise ApplicationError("cannot act in account 111122223333: AccessDenied", type="AccessDenied")

    monkeypatch.setattr(readiness_account, "client", refused)
    result = guardduty_enabled(ReadinessScope(account_id="111122223333", region=REGION))
    assert result.status == CheckStatus.UNKNOWN
    assert "cannot act in account 111122223333" in result.evidence
    assert (result.account_id, result.region) == ("111122223333", REGION)

    def throttled(*_):  # STS throttled the assumption: that passes
        cause = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "AssumeRole")
        raise ApplicationError("cannot act in account 111122223333: Throttling", type="AccessDenied") from cause

    monkeypatch.setattr(readiness_account, "client", throttled)
    with pytest.raises(ApplicationError):
        guardduty_enabled(ReadinessScope(account_id="111122223333", region=REGION))


@pytest.fixture
def scratch_registry(monkeypatch):
    """Checks made up by a test register in a copy of the activity registry, never in the worker's."""
    monkeypatch.setattr(aws_module, "_registry", dict(aws_module._registry))  # noqa: SLF001


def test_a_check_that_breaks_is_unknown_and_logged(scratch_registry, caplog):
    @readiness_check("test.broken", "A check with a bug", reach="scope")
    def broken(scope: ReadinessScope):
        return {}["missing"]

    result = broken(SCOPE)
    assert result.status == CheckStatus.UNKNOWN and "KeyError" in result.evidence
    assert "readiness check test.broken failed" in caplog.text


def test_no_region_is_unknown_and_a_global_check_names_the_security_account(configured, scratch_registry):
    @readiness_check("test.everywhere", "Looks in a region", reach="scope")
    def regional(scope: ReadinessScope):
        return failed("broken", "mend it")

    @readiness_check("test.once", "Looks once", reach="global", required=False)
    def once(scope: ReadinessScope):
        return failed("broken", "mend it")

    nowhere = regional(ReadinessScope(account_id="", region=""))
    assert nowhere.status == CheckStatus.UNKNOWN and "IRFLOW_READINESS_REGIONS" in nowhere.evidence
    result = once(SCOPE)
    assert (result.account_id, result.region, result.required) == ("123456789012", "", False)
    assert (result.status, result.fix) == (CheckStatus.FAIL, "mend it")
    assert once.global_check and not regional.global_check
    assert result.key == "test.once@123456789012/-"
