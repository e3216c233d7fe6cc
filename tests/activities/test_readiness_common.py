"""A readiness check never raises for what it finds: whatever keeps it from looking (AccessDenied, a service not
answering, a member role that cannot be assumed, a call the endpoint does not implement) is `unknown`, with the
reason. The errors come from botocore's Stubber (the service's own error shapes) or a client that cannot connect."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError

from activities import aws as aws_module
from activities import readiness_account
from activities.aws import client
from activities.readiness_account import guardduty_enabled
from activities.readiness_common import failed, readiness_check
from activities.readiness_evidence import evidence_bucket_object_lock, kms_keys, sns_topics
from irflow.models.readiness import CheckStatus, ReadinessScope
from irflow.models.settings import get_settings

REGION = "us-east-1"
SCOPE = ReadinessScope(account_id="", region=REGION)


@pytest.fixture
def configured(aws, monkeypatch):
    monkeypatch.setenv("IRFLOW_EVIDENCE_BUCKET", "evidence-bucket")
    monkeypatch.setenv("IRFLOW_EVIDENCE_KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab")
    monkeypatch.setenv("IRFLOW_NOTIFY_TOPIC_ARN", f"arn:aws:sns:{REGION}:123456789012:irflow-incidents")
    monkeypatch.setenv("IRFLOW_SECURITY_ACCOUNT_ID", "123456789012")
    get_settings.cache_clear()


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


def test_a_service_that_does_not_answer_is_unknown(configured, monkeypatch):
    dead = boto3.session.Session().client(
        "guardduty",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    monkeypatch.setattr(readiness_account, "client", lambda *_: dead)
    result = guardduty_enabled(SCOPE)
    assert result.status == CheckStatus.UNKNOWN
    assert "AWS did not answer" in result.evidence


def test_a_member_role_that_cannot_be_assumed_is_unknown_for_the_checks_behind_it(monkeypatch):
    def refused(*_):
        raise ApplicationError("cannot act in account 111122223333: AccessDenied", type="AccessDenied")

    monkeypatch.setattr(readiness_account, "client", refused)
    result = guardduty_enabled(ReadinessScope(account_id="111122223333", region=REGION))
    assert result.status == CheckStatus.UNKNOWN
    assert "cannot act in account 111122223333" in result.evidence
    assert (result.account_id, result.region) == ("111122223333", REGION)


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
