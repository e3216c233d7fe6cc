"""Trusted sources only: which products, EventBridge sources, SNS topics and SQS senders irflow believes, and
the accounts it answers for (`irflow.intake.trust`), over what `unwrap_arrivals` makes of real envelopes."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from irflow.devstack.demo import sample_finding
from irflow.intake.documents import read_findings
from irflow.intake.envelopes import Arrival, LogFileReference, unwrap_arrivals, unwrap_text_arrivals
from irflow.intake.trust import (
    BUILT_IN_PRODUCTS,
    FILE,
    UNTRUSTED_ACCOUNT,
    UNTRUSTED_SOURCE,
    AccountsUnknown,
    Channel,
    TrustPolicy,
    answered_accounts,
    own_identity,
    product_trusted,
    refusal,
    screen_accounts,
    screen_sources,
)
from irflow.models.finding import FindingRejected, ParsedFinding
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.listener_support import _asff_access_key_finding, _securityhub_event, _sns

ACCOUNT = "123456789012"
TOPIC = "arn:aws:sns:us-east-1:123456789012:findings"
SENDER = "AIDAEXAMPLESENDER0001"
DEFAULT_PRODUCT = f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"
POLICY = TrustPolicy(accounts=frozenset({ACCOUNT}), topics=frozenset({TOPIC}), senders=frozenset({SENDER}))
QUEUE = Channel(queue=True, sender_id="AIDAUNKNOWNSENDER0001")


def _outcomes(document, channel: Channel = QUEUE, policy: TrustPolicy = POLICY, detect=None) -> list:
    """What each result of `document` becomes: its finding's id, or (code, reason) when refused."""
    results = screen_accounts(screen_sources(unwrap_arrivals(document, detect=detect), channel, policy), policy)
    return [r.finding.id if isinstance(r, ParsedFinding) else (r.code, r.reason) for r in results]


def _gd(finding_id: str = "a" * 32, account: str = ACCOUNT) -> dict:
    return sample_finding("i-0123456789abcdef0", account, finding_id=finding_id)


# --- products -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "product",
    [
        "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "arn:aws:securityhub:eu-west-3::product/aws/inspector",
        "arn:aws-cn:securityhub:cn-north-1::product/aws/macie",
        "arn:aws-us-gov:securityhub:us-gov-west-1::product/aws/access-analyzer",
        "arn:aws-iso-b:securityhub:us-isob-east-1::product/aws/securityhub",
    ],
)
def test_the_built_in_aws_products_are_trusted_in_every_partition_and_region(product):
    assert product_trusted(product, BUILT_IN_PRODUCTS)


@pytest.mark.parametrize(
    "product",
    [
        DEFAULT_PRODUCT,  # what anyone with securityhub:BatchImportFindings writes
        "arn:aws:securityhub:us-west-2::product/cloud-custodian/cloud-custodian",
        "arn:aws:securityhub:us-east-1::product/aws/guardduty-lookalike",
        "arn:aws:securityhub:us-east-1::product/aws/guardduty/extra",
        "arn:aws:securityhub:us-east-1:123456789012:product/aws/guardduty",  # an account's, not AWS's
        "arn:aws:securityhub:us-east-1:x::product/aws/guardduty",  # `*` in a field never crosses a colon
        "arn:aws:notsecurityhub:us-east-1::product/aws/guardduty",
        "",
    ],
)
def test_other_products_are_not(product):
    assert not product_trusted(product, BUILT_IN_PRODUCTS)


def test_trusted_products_extend_the_built_in_list():
    settings = IrflowSettings(trusted_products="arn:*:securityhub:*::product/cloud-custodian/*")
    policy = TrustPolicy.from_settings(settings, [ACCOUNT], "IRFLOW_ACCOUNTS")
    assert product_trusted("arn:aws:securityhub:us-west-2::product/cloud-custodian/cloud-custodian", policy.products)
    assert product_trusted("arn:aws:securityhub:us-east-1::product/aws/guardduty", policy.products)
    assert not product_trusted(DEFAULT_PRODUCT, policy.products)


def test_a_security_hub_finding_from_an_untrusted_product_is_refused_naming_the_product():
    untrusted = _asff_access_key_finding("alice", "AKIAEXAMPLE000000001", product_arn=DEFAULT_PRODUCT)
    trusted = _asff_access_key_finding("alice", "AKIAEXAMPLE000000001", finding_id="gd")
    [(code, reason), accepted] = _outcomes(_securityhub_event([untrusted, trusted]))
    assert code == UNTRUSTED_SOURCE and DEFAULT_PRODUCT in reason
    assert accepted == trusted["Id"]
    # bare, or as GetFindings output, from a trusted sender: the product is still checked
    for document in (untrusted, {"Findings": [untrusted]}):
        [(code, reason)] = _outcomes(document, Channel(sender_id=SENDER))
        assert code == UNTRUSTED_SOURCE and DEFAULT_PRODUCT in reason


# --- EventBridge sources ------------------------------------------------------------------------


def test_a_guardduty_event_must_come_from_aws_guardduty():
    assert _outcomes(_gd()) == ["a" * 32]
    forged = {**_gd(), "source": "custom.guardduty"}
    [(code, reason)] = _outcomes(forged)
    assert code == UNTRUSTED_SOURCE and "'custom.guardduty'" in reason and "'aws.guardduty'" in reason
    [(code, _)] = _outcomes({key: value for key, value in _gd().items() if key != "source"})
    assert code == UNTRUSTED_SOURCE


def test_a_security_hub_event_must_come_from_aws_securityhub():
    finding = _asff_access_key_finding("alice", "AKIAEXAMPLE000000001")
    [(code, reason)] = _outcomes(_securityhub_event([finding], source="my.app"))
    assert code == UNTRUSTED_SOURCE and "'aws.securityhub'" in reason


# --- SNS topics ---------------------------------------------------------------------------------


def test_sns_envelopes_must_come_from_a_trusted_topic():
    assert _outcomes(_sns(TOPIC, _gd())) == ["a" * 32]
    other = "arn:aws:sns:us-east-1:999999999999:findings"
    [(code, reason)] = _outcomes(_sns(other, _gd()))
    assert code == UNTRUSTED_SOURCE and other in reason and "IRFLOW_TRUSTED_TOPIC_ARNS" in reason
    # every topic on the way counts, the inner one too
    [(code, reason)] = _outcomes(_sns(TOPIC, _sns(other, _gd())))
    assert code == UNTRUSTED_SOURCE and other in reason
    # a bare finding in a trusted topic's envelope is the topic's: no sender check
    assert _outcomes(_sns(TOPIC, _gd()["detail"])) == ["a" * 32]


def test_a_log_file_named_through_an_untrusted_topic_is_refused_before_it_is_read():
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "trail"}, "object": {"key": "AWSLogs/x.json.gz", "size": 10}},
            }
        ]
    }
    arrived = unwrap_arrivals(_sns("arn:aws:sns:us-east-1:999999999999:s3", notification), detect=lambda _: [])
    [refused] = screen_sources(arrived, QUEUE, POLICY)
    assert isinstance(refused, FindingRejected) and refused.code == UNTRUSTED_SOURCE
    [reference] = screen_sources(unwrap_arrivals(_sns(TOPIC, notification), detect=lambda _: []), QUEUE, POLICY)
    assert isinstance(reference, LogFileReference)


# --- bare findings and senders ------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["camel", "getfindings", "list"])
def test_bare_findings_on_a_queue_need_a_trusted_sender(shape):
    detail = _gd()["detail"]
    document = {"camel": detail, "getfindings": {"Findings": [detail]}, "list": [detail]}[shape]
    [(code, reason)] = _outcomes(document)
    assert code == UNTRUSTED_SOURCE and "AIDAUNKNOWNSENDER0001" in reason and "IRFLOW_TRUSTED_SENDERS" in reason
    assert _outcomes(document, Channel(sender_id=SENDER)) == ["a" * 32]
    [(code, reason)] = _outcomes(document, Channel(sender_id=None))
    assert code == UNTRUSTED_SOURCE and "(none)" in reason


def test_a_file_has_no_sender_or_topic_but_its_product_and_account_are_checked():
    detail = _gd()["detail"]
    assert _outcomes(detail, FILE) == ["a" * 32]
    assert _outcomes(_sns("arn:aws:sns:us-east-1:999999999999:x", _gd()), FILE) == ["a" * 32]
    untrusted = _asff_access_key_finding("alice", "AKIAEXAMPLE000000001", product_arn=DEFAULT_PRODUCT)
    [(code, _)] = _outcomes(untrusted, FILE)
    assert code == UNTRUSTED_SOURCE
    [(code, _)] = _outcomes(_gd(account="210987654321")["detail"], FILE)
    assert code == UNTRUSTED_ACCOUNT
    # what `irflow ingest` calls: each finding with the arrival its file gave it
    [(parsed, arrival)] = read_findings(json.dumps(untrusted))
    assert refusal(parsed, arrival, FILE, POLICY).code == UNTRUSTED_SOURCE


def test_a_file_holding_an_event_from_a_forged_source_is_refused_as_on_a_queue():
    forged = {**_gd(), "source": "custom.guardduty"}
    [(code, reason)] = _outcomes(forged, FILE)
    assert code == UNTRUSTED_SOURCE and "'custom.guardduty'" in reason and "'aws.guardduty'" in reason
    [(parsed, arrival)] = read_findings(json.dumps(forged))
    assert refusal(parsed, arrival, FILE, POLICY).reason == reason, "what `irflow ingest` calls"
    [(code, _)] = _outcomes(
        _securityhub_event([_asff_access_key_finding("alice", "AKIAEXAMPLE000000001")], "my.app"), FILE
    )
    assert code == UNTRUSTED_SOURCE


def test_rejected_input_keeps_its_own_reason():
    [(result, arrival)] = unwrap_text_arrivals("not json {")
    assert arrival == Arrival() and arrival.bare
    assert screen_sources([(result, arrival)], QUEUE, POLICY) == [result]


# --- irflow's own detection, and accounts -------------------------------------------------------


def _detected(account: str):
    """A stand-in detector: every CloudTrail record raises one finding about `account`."""
    finding = ParsedFinding.model_validate(
        {
            "finding": {
                **json.loads(unwrap_arrivals(_gd())[0][0].finding.model_dump_json(include={"resource", "created_at"})),
                "source": "irflow-detection",
                "id": "detected-1",
                "type": "DefenseEvasion:IAMUser/StopLogging",
                "account_id": account,
                "region": "us-east-1",
                "severity_score": 8.0,
                "severity": "HIGH",
                "updated_at": "2026-01-05T10:05:00Z",
                "raw_sha256": "0" * 64,
            },
            "original_shape": "irflow_detection_alert",
            "raw": {"source": "irflow-detection"},
        }
    )
    return lambda record: [finding]


def test_detection_findings_are_trusted_by_construction_but_their_account_is_checked():
    records = {"Records": [{"eventName": "StopLogging"}]}  # bare CloudTrail records, from an unknown sender
    assert _outcomes(records, detect=_detected(ACCOUNT)) == ["detected-1"]
    [(code, reason)] = _outcomes(records, detect=_detected("210987654321"))
    assert code == UNTRUSTED_ACCOUNT and "210987654321" in reason
    [(code, _)] = _outcomes(_sns("arn:aws:sns:us-east-1:999999999999:x", records), detect=_detected(ACCOUNT))
    assert code == UNTRUSTED_SOURCE, "an untrusted topic is untrusted whatever it carries"


def test_a_finding_about_another_account_is_refused_naming_it_and_where_the_accounts_came_from():
    policy = TrustPolicy(accounts=frozenset({ACCOUNT}), accounts_from="the account of irflow's credentials")
    [(code, reason)] = _outcomes(_gd(account="210987654321"), policy=policy)
    assert code == UNTRUSTED_ACCOUNT and "210987654321" in reason and "irflow's credentials" in reason
    finding = _asff_access_key_finding("alice", "AKIAEXAMPLE000000001", account_id="210987654321")
    [(code, _)] = _outcomes(_securityhub_event([finding]), policy=policy)
    assert code == UNTRUSTED_ACCOUNT


def test_the_source_is_judged_before_the_account():
    [(code, _)] = _outcomes({**_gd(account="210987654321"), "source": "custom.guardduty"})
    assert code == UNTRUSTED_SOURCE


def test_answered_accounts_are_the_configured_ones_first():
    assert answered_accounts(IrflowSettings(accounts="111111111111,222222222222", accounts_from_organization=True)) == (
        frozenset({"111111111111", "222222222222"}),
        "IRFLOW_ACCOUNTS",
    )


def test_answered_accounts_are_else_the_credentials_account(aws):
    accounts, origin = answered_accounts(IrflowSettings())
    assert accounts == {boto3.client("sts").get_caller_identity()["Account"]} and "credentials" in origin


def test_answered_accounts_are_else_every_account_of_the_organization_across_pages(aws):
    organizations = boto3.client("organizations", region_name="us-east-1")
    organizations.create_organization(FeatureSet="ALL")
    for n in range(24):  # more than one page of ListAccounts (20)
        organizations.create_account(AccountName=f"member-{n}", Email=f"member-{n}@example.com")
    listed = {a["Id"] for page in organizations.get_paginator("list_accounts").paginate() for a in page["Accounts"]}
    accounts, origin = answered_accounts(IrflowSettings(accounts_from_organization=True))
    assert accounts == listed and len(accounts) == 25 and "organization" in origin


def test_without_an_organization_the_accounts_are_unknown_and_that_is_an_error(aws):
    with pytest.raises(AccountsUnknown, match="IRFLOW_ACCOUNTS"):
        answered_accounts(IrflowSettings(accounts_from_organization=True))


class _Session:
    """A session whose STS answers `arn`, or fails."""

    def __init__(self, arn: str | None) -> None:
        self.arn = arn

    def client(self, service: str):
        assert service == "sts"
        return self

    def get_caller_identity(self) -> dict:
        if self.arn is None:
            raise ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "GetCallerIdentity")
        return {"Arn": self.arn, "Account": "123456789012"}


def test_the_listener_asks_who_it_is_once_for_its_accounts_and_its_own_principal():
    listener = "arn:aws:sts::123456789012:assumed-role/irflow-listener/i-1"
    identity = own_identity(_Session(listener))
    assert identity["Arn"] == listener
    refusing = _Session(None)  # a second question would fail: the answer given is used
    assert answered_accounts(IrflowSettings(), refusing, identity=identity)[0] == {"123456789012"}
    assert own_identity(refusing) is None
    with pytest.raises(AccountsUnknown):
        answered_accounts(IrflowSettings(), refusing, identity=None)
