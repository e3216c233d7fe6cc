"""What the postcondition checks share: the verdict, the refusal of any write action, and the quarantine group's
rules read against what isolation configures (no AWS needed: without a forensic egress nothing is resolved)."""

from __future__ import annotations

import pytest

from activities.postconditions_common import Verdict, check_read_only, quarantine_rule_drift
from irflow.models.postconditions import Postcondition
from irflow.models.settings import get_settings


def test_a_verdict_without_drift_holds_and_says_what_it_noted():
    verdict = Verdict("isolate_network")
    verdict.vanished("eni-2 no longer exists", "eni-2")
    verdict.vanished("eni-2 no longer exists", "eni-2")
    assert verdict.result() == Postcondition(
        step="isolate_network", holds=True, found="eni-2 no longer exists; eni-2 no longer exists", gone=["eni-2"]
    )


def test_a_verdict_with_drift_says_only_the_drift_and_names_each_resource_once():
    verdict = Verdict("isolate_network")
    verdict.note("VPC vpc-1 checked")
    verdict.drifted("eni-1 carries sg-a, sg-b, not only the quarantine group sg-q", "eni-1")
    verdict.drifted("quarantine group sg-q allows in tcp 22 from 0.0.0.0/0", "sg-q", None, "eni-1")
    result = verdict.result()
    assert result.holds is False
    assert result.found == (
        "eni-1 carries sg-a, sg-b, not only the quarantine group sg-q; quarantine group sg-q allows in tcp 22 from "
        "0.0.0.0/0"
    )
    assert result.resources == ["eni-1", "sg-q"]


def test_a_write_action_is_refused_for_a_check():
    assert check_read_only(("ec2:DescribeInstances", "s3:ListBucket", "iam:GetRole")) == (
        "ec2:DescribeInstances",
        "s3:ListBucket",
        "iam:GetRole",
    )
    with pytest.raises(ValueError, match="ec2:ModifyNetworkInterfaceAttribute"):
        check_read_only(("ec2:DescribeInstances", "ec2:ModifyNetworkInterfaceAttribute"))


def test_any_rule_of_a_quarantine_group_is_drift_without_a_forensic_egress(monkeypatch):
    monkeypatch.setenv("IRFLOW_FORENSIC_EGRESS", "")
    get_settings.cache_clear()
    group = {
        "GroupId": "sg-q",
        "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 1000, "ToPort": 2000, "UserIdGroupPairs": [{"GroupId": "sg-app"}]}
        ],
        "IpPermissionsEgress": [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
    }
    assert quarantine_rule_drift(None, group, "vpc-1") == [
        "quarantine group sg-q allows in tcp 1000-2000 from sg-app: it must allow nothing in",
        "quarantine group sg-q allows out all traffic to ::/0: it must allow nothing out",
    ]
    assert quarantine_rule_drift(None, {"GroupId": "sg-q", "IpPermissions": [], "IpPermissionsEgress": []}, "v") == []
