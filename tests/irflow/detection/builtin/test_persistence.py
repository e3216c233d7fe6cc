"""irflow/detection/builtin/persistence.py: its rules, each passing the test events in
persistence.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.rule_tests import run_rule_tests


def test_the_persistence_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("persistence")
    assert [r.rule_id for r in rules] == [
        "irflow.signin.root-password-changed",
        "irflow.iam.user-created",
        "irflow.iam.access-key-for-other-user",
        "irflow.iam.root-access-key-created",
        "irflow.iam.login-profile-changed",
        "irflow.iam.role-trust-opened",
        "irflow.iam.saml-provider-changed",
        "irflow.rolesanywhere.trust-anchor-created",
        "irflow.sts.federation-token",
        "irflow.lambda.code-or-layers-changed",
        "irflow.lambda.permission-added",
        "irflow.rds.iam-role-added",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_persistence_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("persistence")}
    assert purposes <= {"Persistence"}
