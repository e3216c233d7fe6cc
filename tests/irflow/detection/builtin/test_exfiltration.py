"""irflow/detection/builtin/exfiltration.py: its rules, each passing the test events in
exfiltration.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.authoring import EC2_SERVICE, cloudtrail_event
from irflow.detection.rule_tests import run_rule_tests


def test_the_exfiltration_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("exfiltration")
    assert [r.rule_id for r in rules] == [
        "irflow.ec2.snapshot-shared",
        "irflow.ec2.ami-shared",
        "irflow.rds.snapshot-shared",
        "irflow.rds.made-public",
        "irflow.rds.snapshot-exported",
        "irflow.s3.bucket-policy-public",
        "irflow.s3.bucket-acl-public",
        "irflow.codebuild.project-public",
        "irflow.s3.copy-to-other-account",
        "irflow.ec2.traffic-mirroring",
        "irflow.rds.snapshot-copied-cross-region",
        "irflow.s3.bucket-policy-foreign-account",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_exfiltration_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("exfiltration")}
    assert purposes <= {"Exfiltration", "Policy"}


def test_a_snapshot_shared_within_its_own_account_is_not_exfiltration(builtin_rule_file):
    [shared] = [r for r in builtin_rule_file("exfiltration") if r.rule_id == "irflow.ec2.snapshot-shared"]

    def share_with(account: str) -> dict:
        permission = {"createVolumePermission": {"add": {"items": [{"userId": account}]}}}
        return cloudtrail_event("ModifySnapshotAttribute", EC2_SERVICE, request=permission)

    assert not shared.matches(share_with("111111111111"))  # the account the event was recorded in
    assert shared.matches(share_with("999999999999"))
