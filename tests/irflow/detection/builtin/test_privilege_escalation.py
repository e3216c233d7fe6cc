"""irflow/detection/builtin/privilege_escalation.py: its rules, each passing the test events in
privilege_escalation.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.rule_tests import run_rule_tests


def test_the_privilege_escalation_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("privilege_escalation")
    assert [r.rule_id for r in rules] == [
        "irflow.iam.admin-policy-attached",
        "irflow.iam.inline-admin-policy",
        "irflow.iam.policy-version-set-default",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_privilege_escalation_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("privilege_escalation")}
    assert purposes <= {"PrivilegeEscalation"}
