"""irflow/detection/builtin/defense_evasion.py: its rules, each passing the test events in
defense_evasion.events.json, each filed under the tactic its finding type names."""

from __future__ import annotations

from irflow.detection.authoring import EC2_SERVICE, cloudtrail_event
from irflow.detection.rule_tests import run_rule_tests


def test_the_defense_evasion_rules_load_and_pass_their_own_events(builtin_rule_file):
    rules = builtin_rule_file("defense_evasion")
    assert [r.rule_id for r in rules] == [
        "irflow.cloudtrail.trail-stopped",
        "irflow.cloudtrail.event-selectors-reduced",
        "irflow.guardduty.detector-disabled",
        "irflow.guardduty.ipset-changed",
        "irflow.ec2.flow-logs-deleted",
        "irflow.route53resolver.query-logs-deleted",
        "irflow.config.recorder-stopped",
        "irflow.ec2.ebs-default-encryption-disabled",
        "irflow.organizations.leave",
        "irflow.macie.disabled",
        "irflow.securityhub.disabled",
        "irflow.waf.disassociated",
        "irflow.bedrock.logging-deleted",
        "irflow.bedrock.guardrail-changed",
        "irflow.rds.activity-stream-stopped",
        "irflow.s3.bucket-encryption-deleted",
        "irflow.s3.bucket-logging-disabled",
        "irflow.s3.public-access-block-removed",
        "irflow.ec2.security-group-open-to-world",
        "irflow.ec2.network-acl-open",
        "irflow.rds.security-group-ingress",
    ]
    assert run_rule_tests(rules) == []
    assert all(r.tests for r in rules)


def test_each_defense_evasion_rule_is_filed_under_its_tactic(builtin_rule_file):
    purposes = {r.finding_type.split(":", 1)[0] for r in builtin_rule_file("defense_evasion")}
    assert purposes <= {"DefenseEvasion", "Policy"}


def test_any_slash_zero_opens_a_security_group_to_the_world_unless_infrastructure_as_code_does_it(builtin_rule_file):
    [opened] = [
        r for r in builtin_rule_file("defense_evasion") if r.rule_id == "irflow.ec2.security-group-open-to-world"
    ]
    # AWS ignores the host bits: 208.236.235.254/0 is 0.0.0.0/0
    ipv4 = {"items": [{"fromPort": 3389, "ipRanges": {"items": [{"cidrIp": "208.236.235.254/0"}]}}]}
    ipv6 = {"items": [{"fromPort": 22, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}
    for permissions in (ipv4, ipv6):
        event = cloudtrail_event("AuthorizeSecurityGroupIngress", EC2_SERVICE, request={"ipPermissions": permissions})
        assert opened.matches(event)
        assert not opened.matches({**event, "userAgent": "APN/1.0 HashiCorp/1.0 Terraform/1.5.7"})
