"""irflow/detection/builtin/impact.py: its rules, each passing the test events in
impact.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.rule_tests import run_rule_tests


def test_the_impact_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("impact")
    assert [r.rule_id for r in rules] == [
        "irflow.s3.bucket-replication-deleted",
        "irflow.s3.versioning-or-mfa-delete-disabled",
        "irflow.ec2.unusual-instance-launch",
        "irflow.bedrock.model-access-enabled",
        "irflow.rds.deletion-protection-disabled",
        "irflow.rds.automated-backup-deleted",
        "irflow.kms.key-disabled-or-deleted",
        "irflow.route53.domain-transfer",
        "irflow.s3.ransom-note",
        "irflow.s3.sse-c-copy",
        "irflow.account.region-enabled",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_impact_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("impact")}
    assert purposes <= {"Impact"}
