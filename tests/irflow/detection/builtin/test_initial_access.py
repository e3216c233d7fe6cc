"""irflow/detection/builtin/initial_access.py: its rules, each passing the test events in
initial_access.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.rule_tests import run_rule_tests


def test_the_initial_access_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("initial_access")
    assert [r.rule_id for r in rules] == [
        "irflow.signin.root-activity",
        "irflow.signin.root-login-failed",
        "irflow.signin.console-login-without-mfa",
        "irflow.signin.console-login-iam-user",
        "irflow.signin.mfa-failure",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_initial_access_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("initial_access")}
    assert purposes <= {"InitialAccess", "Policy", "UnauthorizedAccess"}
