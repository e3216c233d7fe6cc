"""The test events of Python rules, and running them.

Every Python rule carries events it must fire on and events it must stay quiet on. They are written inline
(`tests=[fires_on(...), stays_quiet_on(...)]`) or kept in a `<rule file>.events.json` beside the rule file;
`irflow rules test` runs them all. An events file reads:

    {
      "base_event": {"eventVersion": "1.08", "awsRegion": "us-east-1", ...},
      "rules": {
        "acme.sts.break-glass-assumed": [
          {"name": "alice assumes it", "fires": true, "event": {"eventSource": "sts.amazonaws.com", ...}}
        ]
      }
    }

`base_event` is optional: when present, each event is that record with the fields the event names replaced
(a whole top-level field at a time), so a test shows only what matters to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irflow.detection.rules import Rule

EVENTS_SUFFIX = ".events.json"  # rules.py → rules.events.json


@dataclass(frozen=True)
class RuleTest:
    """An event and the verdict the rule must give on it (True: it fires)."""

    name: str
    event: Mapping[str, Any]
    expected: bool


def fires_on(name: str, event: Mapping[str, Any]) -> RuleTest:
    """A test: the rule must alert on `event`."""
    return RuleTest(name, event, True)


def stays_quiet_on(name: str, event: Mapping[str, Any]) -> RuleTest:
    """A test: the rule must not alert on `event`."""
    return RuleTest(name, event, False)


@dataclass(frozen=True)
class RuleTestFailure:
    rule_id: str
    test: str
    expected: bool
    got: bool | str

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.test}: expected {self.expected}, got {self.got}"


def events_file_of(rule_file: Path) -> Path:
    return rule_file.with_suffix(EVENTS_SUFFIX)


def read_events_file(path: Path) -> dict[str, list[RuleTest]]:
    """The tests an events file holds, by rule id. Raises ValueError saying what is wrong with the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("rules"), dict):
        raise ValueError('expected {"rules": {rule id: [test, ...]}} (and optionally "base_event")')
    base = document.get("base_event", {})
    if not isinstance(base, dict):
        raise ValueError("base_event must be a JSON object")
    tests: dict[str, list[RuleTest]] = {}
    for rule_id, cases in document["rules"].items():
        if not isinstance(cases, list):
            raise ValueError(f"{rule_id}: expected a list of tests")
        tests[rule_id] = [_test(rule_id, position, case, base) for position, case in enumerate(cases, 1)]
    return tests


def _test(rule_id: str, position: int, case: Any, base: dict[str, Any]) -> RuleTest:
    if (
        not isinstance(case, dict)
        or not isinstance(case.get("name"), str)
        or not isinstance(case.get("fires"), bool)
        or not isinstance(case.get("event"), dict)
    ):
        raise ValueError(f'{rule_id}: test {position} needs "name" (text), "fires" (true/false) and "event" (object)')
    return RuleTest(case["name"], {**base, **case["event"]}, case["fires"])


def run_rule_tests(rules: Iterable[Rule]) -> list[RuleTestFailure]:
    """Run each Python rule's own test events; the failures (empty when all pass). A rule must carry at least
    one event it fires on and one it does not. Rules without test events (Sigma, windowed) are skipped."""
    failures = []
    for tested in rules:
        tests: tuple[RuleTest, ...] | None = getattr(tested, "tests", None)
        if tests is None:
            continue
        if {test.expected for test in tests} != {True, False}:
            failures.append(
                RuleTestFailure(tested.rule_id, "(tests)", True, "needs an event it fires on and one it does not")
            )
        for test in tests:
            try:
                got: bool | str = tested.matches(test.event)
            except Exception as exc:  # a crashing rule is a failing rule
                got = f"{type(exc).__name__}: {exc}"
            if got != test.expected:
                failures.append(RuleTestFailure(tested.rule_id, test.name, test.expected, got))
    return failures
