"""What a rule declares it can match (`Rule.admits`, `Rule.admits_event`), and the alert it raises."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from irflow.detection.rules import Alert, Event, Rule
from irflow.models.finding import Severity


def declaring(**declarations) -> Rule:
    return Rule(
        rule_id="test.rule",
        title="A rule under test",
        severity=Severity.HIGH,
        finding_type="Persistence:IAMUser/TestRule",
        **declarations,
    )


def cloudtrail(source: str = "iam.amazonaws.com", name: str = "CreateAccessKey", identity_type: str = "IAMUser"):
    return {"eventSource": source, "eventName": name, "userIdentity": {"type": identity_type}}


# ------------------------------------------------------------------------------------------- admits


def test_a_rule_declaring_nothing_admits_any_event_even_one_without_the_fields() -> None:
    rule = declaring()
    assert rule.admits("iam.amazonaws.com", "CreateAccessKey", "IAMUser")
    assert rule.admits(None, None, None)
    assert rule.admits_event({})


def test_event_sources_admit_only_those_sources() -> None:
    rule = declaring(event_sources=frozenset({"iam.amazonaws.com", "sts.amazonaws.com"}))
    assert rule.admits("iam.amazonaws.com", "AnyName", None)
    assert rule.admits("sts.amazonaws.com", "AssumeRole", "AssumedRole")
    assert not rule.admits("s3.amazonaws.com", "CreateAccessKey", "IAMUser")
    assert not rule.admits(None, "CreateAccessKey", "IAMUser")


def test_event_names_admit_only_those_names_from_any_source() -> None:
    rule = declaring(event_names=frozenset({"CreateAccessKey"}))
    assert rule.admits("iam.amazonaws.com", "CreateAccessKey", None)
    assert rule.admits("elsewhere.amazonaws.com", "CreateAccessKey", None)
    assert not rule.admits("iam.amazonaws.com", "createaccesskey", None)  # CloudTrail names are exact
    assert not rule.admits("iam.amazonaws.com", "CreateAccessKeys", None)


def test_name_prefixes_admit_names_starting_with_any_of_them() -> None:
    rule = declaring(name_prefixes=("List", "Describe"))
    assert rule.admits("iam.amazonaws.com", "ListUsers", None)
    assert rule.admits("ec2.amazonaws.com", "DescribeInstances", None)
    assert not rule.admits("iam.amazonaws.com", "GetUser", None)
    assert not rule.admits("iam.amazonaws.com", "UnListUsers", None)


@pytest.mark.parametrize("name", [None, 42, b"ListUsers", ["ListUsers"]])
def test_name_prefixes_refuse_an_event_name_that_is_not_a_string(name) -> None:
    assert not declaring(name_prefixes=("List",)).admits("iam.amazonaws.com", name, None)


def test_identity_types_admit_only_those_callers() -> None:
    rule = declaring(identity_types=frozenset({"Root"}))
    assert rule.admits("s3.amazonaws.com", "PutBucketPolicy", "Root")
    assert not rule.admits("s3.amazonaws.com", "PutBucketPolicy", "IAMUser")
    assert not rule.admits("s3.amazonaws.com", "PutBucketPolicy", None)


def test_every_declaration_must_hold() -> None:
    rule = declaring(
        event_sources=frozenset({"iam.amazonaws.com"}),
        event_names=frozenset({"CreateAccessKey", "ListAccessKeys"}),
        name_prefixes=("Create",),
        identity_types=frozenset({"Root"}),
    )
    assert rule.admits("iam.amazonaws.com", "CreateAccessKey", "Root")
    assert not rule.admits("sts.amazonaws.com", "CreateAccessKey", "Root")  # source
    assert not rule.admits("iam.amazonaws.com", "DeleteAccessKey", "Root")  # name
    assert not rule.admits("iam.amazonaws.com", "ListAccessKeys", "Root")  # a declared name, but not the prefix
    assert not rule.admits("iam.amazonaws.com", "CreateAccessKey", "IAMUser")  # identity type


def test_admits_event_reads_source_name_and_identity_type_from_the_record() -> None:
    rule = declaring(
        event_sources=frozenset({"iam.amazonaws.com"}),
        event_names=frozenset({"CreateAccessKey"}),
        identity_types=frozenset({"Root"}),
    )
    assert rule.admits_event(cloudtrail(identity_type="Root"))
    assert not rule.admits_event(cloudtrail(identity_type="IAMUser"))
    assert not rule.admits_event(cloudtrail(source="sts.amazonaws.com", identity_type="Root"))
    assert not rule.admits_event(cloudtrail(name="DeleteAccessKey", identity_type="Root"))


@pytest.mark.parametrize("identity", [None, "Root", ["Root"], {}])
def test_a_missing_or_malformed_user_identity_has_no_identity_type(identity) -> None:
    event = {"eventSource": "iam.amazonaws.com", "eventName": "CreateAccessKey", "userIdentity": identity}
    assert not declaring(identity_types=frozenset({"Root"})).admits_event(event)
    assert declaring(event_names=frozenset({"CreateAccessKey"})).admits_event(event)


def test_an_event_name_that_is_a_list_is_refused_not_raised_on() -> None:
    """CloudTrail input is untrusted JSON: a record whose eventName is an array cannot match a rule that
    names its events, and must not crash the rule either."""
    event = {"eventSource": "iam.amazonaws.com", "eventName": ["CreateAccessKey"], "userIdentity": {"type": "Root"}}
    assert not declaring(event_names=frozenset({"CreateAccessKey"})).admits_event(event)


# -------------------------------------------------------------------------------------------- alert


def test_alert_carries_the_rules_fields_and_the_events_in_order() -> None:
    rule = declaring(description="Someone made a key.", references=("https://example.com/why",))
    first, second = cloudtrail(name="CreateUser"), cloudtrail()
    alert = rule.alert((first, second))
    assert alert == Alert(
        rule_id="test.rule",
        title="A rule under test",
        severity=Severity.HIGH,
        finding_type="Persistence:IAMUser/TestRule",
        events=(first, second),
        description="Someone made a key.",
        references=("https://example.com/why",),
    )
    assert alert.events[0] is first and alert.events[1] is second


@dataclass
class CreatesKeys(Rule):
    def matches(self, event: Event) -> bool:
        return event.get("eventName") == "CreateAccessKey"


def test_a_stateless_rule_observes_by_alerting_on_each_matching_event() -> None:
    rule = CreatesKeys(rule_id="keys", title="Key created", severity=Severity.MEDIUM, finding_type="A:B/C")
    event = cloudtrail()
    alert = rule.observe(event)
    assert alert is not None and alert.rule_id == "keys" and alert.events == (event,)
    assert rule.observe(cloudtrail(name="DeleteAccessKey")) is None
    assert rule.indexed_test()(event) is True  # what the engine runs after its index has admitted the event
