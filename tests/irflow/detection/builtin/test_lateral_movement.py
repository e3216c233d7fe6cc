"""irflow/detection/builtin/lateral_movement.py: its rules, each passing the test events in
lateral_movement.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.rule_tests import run_rule_tests


def test_the_lateral_movement_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("lateral_movement")
    assert [r.rule_id for r in rules] == [
        "irflow.ec2-instance-connect.ssh-key-pushed",
        "irflow.ec2.serial-console-enabled",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_lateral_movement_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("lateral_movement")}
    assert purposes <= {"LateralMovement"}
