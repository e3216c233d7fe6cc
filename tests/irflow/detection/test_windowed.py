"""Windowed rules: per-principal thresholds and sequences over event time, bounded memory, one alert
per window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from irflow.detection.engine import Engine
from irflow.detection.windowed import NewAddressThenRule, ThresholdRule, windowed_rules
from irflow.models.finding import Severity

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def event(
    name: str,
    source: str,
    seconds: float,
    *,
    user: str = "alice",
    request: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "eventTime": (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::111111111111:user/{user}", "userName": user},
        "sourceIPAddress": extra.pop("ip", "203.0.113.7"),
        "userAgent": "aws-cli/2",
        "requestParameters": request or {},
        **extra,
    }


def rule(rule_id: str):
    return next(r for r in windowed_rules() if r.rule_id == rule_id)


def secret(seconds: float, n: int, user: str = "alice") -> dict[str, Any]:
    return event("GetSecretValue", "secretsmanager.amazonaws.com", seconds, user=user, request={"secretId": f"s{n}"})


def test_secrets_burst_counts_distinct_secrets_in_window_and_alerts_once() -> None:
    r = rule("irflow.cloudtrail.secrets-burst")
    # the same secret over and over is not a burst of distinct secrets
    assert all(r.observe(secret(i, 1)) is None for i in range(20))
    alerts = [r.observe(secret(100 + i, i)) for i in range(2, 12)]
    fired = [a for a in alerts if a is not None]
    assert len(fired) == 1  # once per window, no storm
    assert fired[0].rule_id == "irflow.cloudtrail.secrets-burst"
    assert fired[0].finding_type == "CredentialAccess:IAMUser/SecretsBurst"
    assert len(fired[0].events) >= 5
    # a window later it may alert again
    assert [a for a in (r.observe(secret(1000 + i, 100 + i)) for i in range(5)) if a]


def test_secrets_spread_out_over_time_do_not_alert() -> None:
    r = rule("irflow.cloudtrail.secrets-burst")
    assert all(r.observe(secret(i * 300, i)) is None for i in range(20))  # one every 5 minutes


def test_thresholds_are_per_principal() -> None:
    r = rule("irflow.cloudtrail.secrets-burst")
    assert all(r.observe(secret(i, i, user=f"u{i % 5}")) is None for i in range(20))


def test_password_data_burst_counts_denied_attempts() -> None:
    r = rule("irflow.cloudtrail.ec2-password-data-burst")
    fired = [
        r.observe(event("GetPasswordData", "ec2.amazonaws.com", i, errorCode="Client.UnauthorizedOperation"))
        for i in range(30)
    ]
    assert sum(a is not None for a in fired) == 1


def test_ssm_parameters_burst_counts_names_inside_one_call() -> None:
    r = rule("irflow.cloudtrail.ssm-parameters-burst")
    call = event(
        "GetParameters",
        "ssm.amazonaws.com",
        0,
        request={"names": [f"/p/{i}" for i in range(10)], "withDecryption": True},
    )
    assert r.observe(call) is not None
    plain = event(
        "GetParameters", "ssm.amazonaws.com", 0, user="bob", request={"names": [f"/p/{i}" for i in range(10)]}
    )
    assert r.observe(plain) is None  # no decryption, no secrets


def test_enumeration_burst() -> None:
    r = rule("irflow.cloudtrail.enumeration-burst")
    names = [f"List{i}" for i in range(40)]
    fired = [r.observe(event(n, "iam.amazonaws.com", i)) for i, n in enumerate(names[:29])]
    assert not any(fired)
    assert r.observe(event(names[29], "iam.amazonaws.com", 29)) is not None
    # console browsing is not enumeration by a script
    r2 = rule("irflow.cloudtrail.enumeration-burst")
    console = [r2.observe(event(n, "iam.amazonaws.com", 0, userAgent="console.amazonaws.com")) for n in names]
    assert not any(console)


def test_memory_is_bounded() -> None:
    r = ThresholdRule(
        rule_id="t",
        title="t",
        severity=Severity.LOW,
        finding_type="Discovery:IAMUser/T",
        threshold=10**9,
        max_principals=50,
        max_events=7,
    )
    for i in range(1000):
        r.observe(event("ListUsers", "iam.amazonaws.com", 0, user=f"u{i}"))
    assert len(r._state) == 50
    for i in range(1000):
        r.observe(event("ListUsers", "iam.amazonaws.com", i / 100, user="u999"))
    assert len(r._state["arn:aws:iam::111111111111:user/u999"].events) == 7


def login(seconds: float, ip: str, user: str = "alice") -> dict[str, Any]:
    return event(
        "ConsoleLogin", "signin.amazonaws.com", seconds, user=user, ip=ip, responseElements={"ConsoleLogin": "Success"}
    )


def stop(seconds: float, user: str = "alice") -> dict[str, Any]:
    return event("StopLogging", "cloudtrail.amazonaws.com", seconds, user=user)


def test_new_address_login_then_stop_logging() -> None:
    r = rule("irflow.cloudtrail.new-address-login-then-stop-logging")
    assert isinstance(r, NewAddressThenRule)
    assert r.observe(login(0, "198.51.100.1")) is None
    alert = r.observe(stop(60))
    assert alert is not None and alert.severity == Severity.CRITICAL
    assert [e["eventName"] for e in alert.events] == ["ConsoleLogin", "StopLogging"]
    assert r.observe(stop(120)) is None  # once per login


def test_known_address_or_late_stop_does_not_alert() -> None:
    r = rule("irflow.cloudtrail.new-address-login-then-stop-logging")
    r.observe(login(0, "198.51.100.1"))
    r.observe(stop(10))  # first time: alerts (covered above)
    r.observe(login(100, "198.51.100.1"))  # same address again
    assert r.observe(stop(200)) is None
    r.observe(login(300, "192.0.2.9"))  # new address, but the stop comes hours later
    assert r.observe(stop(300 + 5 * 3600)) is None
    other = rule("irflow.cloudtrail.new-address-login-then-stop-logging")
    other.observe(login(0, "192.0.2.1", user="bob"))
    assert other.observe(stop(10, user="carol")) is None  # a different principal


def test_windowed_rules_are_indexed_through_the_engine() -> None:
    engine = Engine(windowed_rules())
    assert not engine.candidates(event("PutObject", "s3.amazonaws.com", 0)) or all(
        r.rule_id == "irflow.cloudtrail.enumeration-burst"
        for r in engine.candidates(event("PutObject", "s3.amazonaws.com", 0))
    )
    alerts = [a for i in range(10) for a in engine.evaluate(secret(i, i))]
    assert [a.rule_id for a in alerts] == ["irflow.cloudtrail.secrets-burst"]
