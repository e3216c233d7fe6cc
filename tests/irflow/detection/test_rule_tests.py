"""Running a Python rule's own test events, and reading them from an `.events.json` file."""

from __future__ import annotations

import json

import pytest

from irflow.detection.authoring import (
    CLOUDTRAIL_SERVICE,
    Severity,
    cloudtrail_event,
    fires_on,
    rule,
    stays_quiet_on,
)
from irflow.detection.rule_tests import RuleTest, read_events_file, run_rule_tests
from irflow.detection.windowed import windowed_rules

STOP = cloudtrail_event("StopLogging", CLOUDTRAIL_SERVICE)
START = cloudtrail_event("StartLogging", CLOUDTRAIL_SERVICE)


def _stop_logging_rule(*tests: RuleTest, predicate=lambda event: True):
    return rule(
        id="team.cloudtrail.stopped",
        title="Trail stopped",
        severity=Severity.HIGH,
        finding_type="DefenseEvasion:IAMUser/TrailStopped",
        sources={CLOUDTRAIL_SERVICE},
        names={"StopLogging"},
        tests=tests,
    )(predicate).rule


def test_fires_on_and_stays_quiet_on_are_the_two_verdicts():
    assert fires_on("stops", STOP) == RuleTest("stops", STOP, True)
    assert stays_quiet_on("starts", START) == RuleTest("starts", START, False)


def test_a_rule_passing_its_events_has_no_failures():
    assert run_rule_tests([_stop_logging_rule(fires_on("stops", STOP), stays_quiet_on("starts", START))]) == []


def test_a_wrong_verdict_a_crash_and_a_missing_quiet_event_are_each_a_failure():
    wrong = _stop_logging_rule(fires_on("stops", STOP), stays_quiet_on("stops again", STOP))
    assert [str(f) for f in run_rule_tests([wrong])] == [
        "team.cloudtrail.stopped: stops again: expected False, got True"
    ]

    crashing = _stop_logging_rule(
        fires_on("stops", STOP), stays_quiet_on("starts", START), predicate=lambda event: event["missing"]
    )
    [failure] = run_rule_tests([crashing])
    assert failure.test == "stops" and failure.got == "KeyError: 'missing'"

    only_positive = _stop_logging_rule(fires_on("stops", STOP))
    [failure] = run_rule_tests([only_positive])
    assert failure.test == "(tests)" and "one it does not" in str(failure.got)


def test_rules_without_test_events_are_skipped():
    assert run_rule_tests(windowed_rules()) == []


def test_an_events_file_names_each_events_verdict_and_fills_fields_from_its_base_event(tmp_path):
    path = tmp_path / "stops.events.json"
    path.write_text(
        json.dumps(
            {
                "base_event": {"awsRegion": "eu-west-1", "eventSource": CLOUDTRAIL_SERVICE},
                "rules": {
                    "team.cloudtrail.stopped": [
                        {"name": "stops", "fires": True, "event": {"eventName": "StopLogging"}},
                        {"name": "starts", "fires": False, "event": {"eventName": "StartLogging", "awsRegion": None}},
                    ]
                },
            }
        )
    )
    stops, starts = read_events_file(path)["team.cloudtrail.stopped"]
    assert stops == RuleTest(
        "stops", {"awsRegion": "eu-west-1", "eventSource": CLOUDTRAIL_SERVICE, "eventName": "StopLogging"}, True
    )
    assert starts.expected is False and starts.event["awsRegion"] is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "JSONDecodeError"),
        ('{"team.x": []}', '{"rules": {rule id: [test, ...]}}'),
        ('{"base_event": [], "rules": {}}', "base_event must be a JSON object"),
        ('{"rules": {"team.x": {}}}', "team.x: expected a list of tests"),
        ('{"rules": {"team.x": [{"name": "n", "fires": "yes", "event": {}}]}}', 'team.x: test 1 needs "name"'),
        ('{"rules": {"team.x": [{"name": "n", "fires": true}]}}', '"event" (object)'),
    ],
)
def test_a_malformed_events_file_says_what_is_wrong(tmp_path, content, says):
    path = tmp_path / "x.events.json"
    path.write_text(content)
    with pytest.raises(ValueError) as raised:
        read_events_file(path)
    assert says in str(raised.value)
