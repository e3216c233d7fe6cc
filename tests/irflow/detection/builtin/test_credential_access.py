"""irflow/detection/builtin/credential_access.py: its rules, each passing the test events in
credential_access.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.rule_tests import run_rule_tests


def test_the_credential_access_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("credential_access")
    assert [r.rule_id for r in rules] == [
        "irflow.iam.deny-all-quarantine",
        "irflow.ec2.get-password-data",
        "irflow.secretsmanager.batch-get",
        "irflow.rds.master-password-changed",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_credential_access_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("credential_access")}
    assert purposes <= {"CredentialAccess"}
