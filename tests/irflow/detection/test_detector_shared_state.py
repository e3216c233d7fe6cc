"""Detectors of several listeners sharing one state table (moto in-process): a burst split between them alerts
once, a login on one and the blinding call on the other are one sequence, alerts group across them; and when the
table cannot answer, each decides alone as before."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from irflow.detection.detector import Detector
from irflow.detection.shared_state import DynamoState
from tests.irflow.detection.test_shared_state import make_table

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
SECRETS_BURST = "CredentialAccess:IAMUser/SecretsBurst"


def record(name: str, source: str, seconds: float, *, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "eventTime": (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "eventID": f"{name}-{n}-{seconds}",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111111111111",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111111111111:user/alice",
            "accountId": "111111111111",
            "accessKeyId": "AKIAEXAMPLEALICE0001",
            "userName": "alice",
        },
        "sourceIPAddress": extra.pop("ip", "203.0.113.7"),
        "userAgent": "aws-cli/2",
        **extra,
    }


def secret(seconds: float, n: int) -> dict[str, Any]:
    return record(
        "GetSecretValue", "secretsmanager.amazonaws.com", seconds, n=n, requestParameters={"secretId": f"s{n}"}
    )


def found(detector: Detector, events: list[dict[str, Any]], finding_type: str) -> list:
    return [f for e in events for f in detector(e) if f.finding.type == finding_type]


@pytest.fixture
def table(aws) -> str:
    return make_table()


def test_a_secrets_burst_split_between_two_listeners_alerts_once(table):
    one, other = Detector(state=DynamoState(table)), Detector(state=DynamoState(table))
    burst = [secret(n, n) for n in range(8)]
    alerts = []
    for n, event in enumerate(burst):  # alternately: neither listener alone sees five distinct secrets
        alerts += found(one if n % 2 == 0 else other, [event], SECRETS_BURST)
    assert len(alerts) == 1, "one alert for the burst, from whichever listener saw the fifth secret"
    assert alerts[0].finding.resource.access_key_id == "AKIAEXAMPLEALICE0001"
    assert one.alerts["irflow.cloudtrail.secrets-burst"] + other.alerts["irflow.cloudtrail.secrets-burst"] == 1

    alone_one, alone_other = Detector(), Detector()
    split = [found(alone_one if n % 2 == 0 else alone_other, [e], SECRETS_BURST) for n, e in enumerate(burst)]
    assert not any(split), "without the table, neither listener sees the burst (why the docs said: one listener)"


def test_the_window_stays_quiet_across_listeners_then_alerts_again_a_window_later(table):
    one, other = Detector(state=DynamoState(table)), Detector(state=DynamoState(table))
    assert len(found(one, [secret(n, n) for n in range(5)], SECRETS_BURST)) == 1
    assert found(other, [secret(10 + n, 10 + n) for n in range(5)], SECRETS_BURST) == [], "same window"
    later = [secret(700 + n, 20 + n) for n in range(5)]
    assert len(found(other, later, SECRETS_BURST)) == 1


def test_a_repeated_value_costs_one_round_trip_per_rule_not_one_per_call(table):
    state = DynamoState(table)
    detector = Detector(state=state)
    for n in range(20):  # a script reading one secret in a loop
        detector(record("GetSecretValue", "secretsmanager.amazonaws.com", 5, n=n, requestParameters={"secretId": "s"}))
    # the secrets burst counts the secret, the enumeration burst the call: each written once
    assert state.calls["update_item"] == 2


def test_items_expire_through_the_ttl_attribute(table):
    Detector(state=DynamoState(table))(secret(0, 0))
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=table)["Items"]
    expiry = {i["pk"]["S"].split("#")[1]: int(i["expires_at"]["N"]) - time.time() for i in items}
    assert sorted(expiry) == ["irflow.cloudtrail.enumeration-burst", "irflow.cloudtrail.secrets-burst"]
    assert 600 + 3600 - 60 < expiry["irflow.cloudtrail.secrets-burst"] <= 600 + 3600, "its window and an hour"
    assert 60 + 3600 - 60 < expiry["irflow.cloudtrail.enumeration-burst"] <= 60 + 3600


def test_a_new_address_login_on_one_listener_then_stop_logging_on_another_is_one_alert(table):
    one, other = Detector(state=DynamoState(table)), Detector(state=DynamoState(table))
    login = record(
        "ConsoleLogin", "signin.amazonaws.com", 0, ip="198.51.100.9", responseElements={"ConsoleLogin": "Success"}
    )
    stop = record("StopLogging", "cloudtrail.amazonaws.com", 60, requestParameters={"name": "trail"})
    kind = "DefenseEvasion:IAMUser/CloudTrailStoppedAfterNewLogin"
    assert found(one, [login], kind) == []
    [alert] = found(other, [stop], kind)
    assert [e["eventName"] for e in alert.raw["events"]] == ["ConsoleLogin", "StopLogging"]
    again = record("StopLogging", "cloudtrail.amazonaws.com", 90, n=1, requestParameters={"name": "trail"})
    assert found(one, [again], kind) == [], "once per login, whichever listener sees the next call"


def test_alerts_about_one_subject_group_across_listeners(table):
    one, other = Detector(state=DynamoState(table)), Detector(state=DynamoState(table))
    stops = [
        record("DeleteTrail", "cloudtrail.amazonaws.com", n, n=n, requestParameters={"name": "t"}) for n in range(3)
    ]
    rule_findings = []
    for n, event in enumerate(stops):
        findings = [f for f in (one if n % 2 == 0 else other)(event) if f.original_shape == "irflow_detection_alert"]
        rule_findings.append([f for f in findings if "DeleteTrail" in str(f.raw["events"][0]["eventName"])])
    first, second, third = rule_findings
    assert first and second and not third, "the 1st and 2nd alert reach the incident; the 3rd is counted"
    assert {f.finding.id for f in second} <= {f.finding.id for f in first}, "the other listener's alert joined"
    assert max(f.finding.count for f in second) == 2
    assert sum(one.grouped.values()) + sum(other.grouped.values()) >= 1


def test_when_the_table_cannot_answer_each_listener_decides_alone(aws, caplog):
    detector = Detector(state=DynamoState("no-such-table"))
    with caplog.at_level(logging.WARNING):
        alerts = found(detector, [secret(n, n) for n in range(6)], SECRETS_BURST)
    assert len(alerts) == 1, "the burst this listener saw still alerts, once"
    assert "shared state unavailable" in caplog.text and "alert groups unavailable" in caplog.text
