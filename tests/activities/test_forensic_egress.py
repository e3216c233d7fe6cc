"""The quarantine group's forensic egress (IRFLOW_FORENSIC_EGRESS), checked the way a responder would check it
in AWS (moto): after isolation the instance reaches the SSM and S3 endpoints over HTTPS and nothing else,
whatever someone added to the group by hand, and a second isolation changes no rule."""

from __future__ import annotations

from typing import NamedTuple

import boto3
import pytest

from activities.aws import client
from activities.ec2_containment import isolate_network
from activities.forensic_egress import atoms
from irflow.models.settings import get_settings
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance, quarantine_groups

UNKNOWN_PREFIX_LIST = "pl-0123456789abcdef0"
EVERYTHING_OUT = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
HTTPS_TO_EVERYONE = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
SSH_FROM_ANYWHERE = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
RULE_CHANGES = (
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
)


class Endpoints(NamedTuple):
    group: str  # the VPC interface endpoints' security group, in the instance's VPC
    elsewhere: str  # a security group of another VPC: no rule can reference it
    s3: str  # the region's S3 prefix list (the gateway endpoint's)


def configure(monkeypatch, ids: list[str]) -> None:
    monkeypatch.setenv("IRFLOW_FORENSIC_EGRESS", ",".join(ids))
    monkeypatch.setenv("IRFLOW_QUARANTINE_INSTANCE_PROFILE", "irflow-quarantine")
    get_settings.cache_clear()


@pytest.fixture
def endpoints(workload, monkeypatch) -> Endpoints:
    ec2 = boto3.client("ec2", region_name=workload.region)
    group = ec2.create_security_group(GroupName="test-endpoints", Description="SSM and S3", VpcId=workload.vpc_id)
    other_vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    elsewhere = ec2.create_security_group(GroupName="test-endpoints", Description="elsewhere", VpcId=other_vpc)
    [s3] = [
        p["PrefixListId"]
        for p in ec2.describe_prefix_lists()["PrefixLists"]
        if p["PrefixListName"] == f"com.amazonaws.{workload.region}.s3"
    ]
    configure(monkeypatch, [group["GroupId"], s3])
    return Endpoints(group["GroupId"], elsewhere["GroupId"], s3)


def targets(permissions: list[dict]) -> set[tuple]:
    """Each rule as (protocol, from port, to port, target), however AWS merged them into permissions."""
    found = set()
    for p in permissions:
        ports = (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        found |= {(*ports, r["CidrIp"]) for r in p.get("IpRanges", [])}
        found |= {(*ports, r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])}
        found |= {(*ports, r["PrefixListId"]) for r in p.get("PrefixListIds", [])}
        found |= {(*ports, r["GroupId"]) for r in p.get("UserIdGroupPairs", [])}
    return found


def https_to(*ids: str) -> set[tuple]:
    return {("tcp", 443, 443, i) for i in ids}


def the_quarantine_group(workload) -> dict:
    [group] = quarantine_groups(workload)
    return group


def rules_of_the_vpc(workload) -> list[dict]:
    """Every security group rule of the VPC's groups, with the ids AWS gives each rule."""
    ec2 = boto3.client("ec2", region_name=workload.region)
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [workload.vpc_id]}])
    ids = [g["GroupId"] for g in groups["SecurityGroups"]]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": ids}])["SecurityGroupRules"]
    return sorted(rules, key=lambda r: r["SecurityGroupRuleId"])


def test_the_isolated_instance_reaches_only_the_endpoints_over_https(workload, target, endpoints):
    step = step_input(target)
    result = isolate_network(step)
    quarantine = the_quarantine_group(workload)
    assert observed_instance(workload)["enis"] == {
        eni.network_interface_id: [quarantine["GroupId"]] for eni in step.prior.network_interfaces
    }
    assert quarantine["IpPermissions"] == []
    # The egress a new group gets (all traffic to 0.0.0.0/0) is gone: HTTPS to the endpoints is all there is.
    assert targets(quarantine["IpPermissionsEgress"]) == https_to(endpoints.group, endpoints.s3)
    assert result.detail["forensic_egress"] == {workload.vpc_id: [endpoints.group, endpoints.s3]}
    assert result.detail["forensic_egress_missing"] == {}


def test_rules_added_by_hand_are_gone_after_the_next_isolation(workload, target, endpoints):
    step = step_input(target)
    isolate_network(step)
    group_id = the_quarantine_group(workload)["GroupId"]
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[SSH_FROM_ANYWHERE])
    ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[EVERYTHING_OUT])
    # Same protocol and port as the wanted rules: AWS lists them in one permission with the endpoints.
    ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[HTTPS_TO_EVERYONE])
    web = {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "UserIdGroupPairs": [{"GroupId": workload.web_group_id}],
    }
    ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[web])
    loosened = the_quarantine_group(workload)
    assert len(targets(loosened["IpPermissionsEgress"])) == 5 and loosened["IpPermissions"] != []

    isolate_network(step)
    tightened = the_quarantine_group(workload)
    assert tightened["IpPermissions"] == []
    assert targets(tightened["IpPermissionsEgress"]) == https_to(endpoints.group, endpoints.s3)


def test_other_vpcs_groups_and_unknown_prefix_lists_are_skipped_and_named(workload, target, endpoints, monkeypatch):
    configure(monkeypatch, [endpoints.group, endpoints.elsewhere, endpoints.s3, UNKNOWN_PREFIX_LIST])
    result = isolate_network(step_input(target))
    assert result.changed is True, "containment goes on without them"
    quarantine = the_quarantine_group(workload)
    assert targets(quarantine["IpPermissionsEgress"]) == https_to(endpoints.group, endpoints.s3)
    assert result.detail["forensic_egress"] == {workload.vpc_id: [endpoints.group, endpoints.s3]}
    assert result.detail["forensic_egress_missing"] == {workload.vpc_id: [endpoints.elsewhere, UNKNOWN_PREFIX_LIST]}
    referenced = {
        rule.get("ReferencedGroupInfo", {}).get("GroupId") or rule.get("PrefixListId")
        for rule in rules_of_the_vpc(workload)
    }
    assert endpoints.group in referenced and endpoints.s3 in referenced
    assert endpoints.elsewhere not in referenced and UNKNOWN_PREFIX_LIST not in referenced


def test_without_the_setting_the_quarantine_group_allows_nothing_out(workload, target, monkeypatch):
    monkeypatch.delenv("IRFLOW_FORENSIC_EGRESS", raising=False)
    get_settings.cache_clear()
    result = isolate_network(step_input(target))
    quarantine = the_quarantine_group(workload)
    assert quarantine["IpPermissions"] == [] and quarantine["IpPermissionsEgress"] == []
    assert result.detail["forensic_egress"] == {workload.vpc_id: []}


def test_the_egress_is_withdrawn_when_the_setting_is(workload, target, endpoints, monkeypatch):
    step = step_input(target)
    isolate_network(step)
    assert targets(the_quarantine_group(workload)["IpPermissionsEgress"]) != set()
    monkeypatch.delenv("IRFLOW_FORENSIC_EGRESS")
    get_settings.cache_clear()
    isolate_network(step)
    assert the_quarantine_group(workload)["IpPermissionsEgress"] == []


def test_a_second_isolation_changes_no_rule(workload, target, endpoints):
    step = step_input(target)
    assert isolate_network(step).changed is True
    once = rules_of_the_vpc(workload)
    calls = []
    ec2 = client("ec2", target.region, target.account_id)  # the client the activity uses
    for operation in (*RULE_CHANGES, "CreateSecurityGroup", "CreateTags"):
        ec2.meta.events.register(
            f"provide-client-params.ec2.{operation}", lambda params, model, **_: calls.append((model.name, params))
        )
    again = isolate_network(step)
    assert again.changed is False
    quarantine = the_quarantine_group(workload)["GroupId"]
    # The untrack group's allow-all rules are asked for each time (and found there): not this group's concern.
    assert [(name, params) for name, params in calls if params.get("GroupId") == quarantine] == []
    assert [name for name, _ in calls if name not in RULE_CHANGES] == [], "no group made or tagged"
    assert rules_of_the_vpc(workload) == once  # the same rules, by their ids: none revoked and made again
    assert again.detail["forensic_egress"] == {workload.vpc_id: [endpoints.group, endpoints.s3]}


def test_a_merged_permission_is_split_into_one_rule_per_target():
    merged = {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "UserIdGroupPairs": [{"UserId": "123456789012", "GroupId": "sg-0123456789abcdef0", "Description": "ssm"}],
        "PrefixListIds": [{"PrefixListId": "pl-0123456789abcdef0"}],
        "IpRanges": [],
        "Ipv6Ranges": [],
    }
    assert atoms([merged]) == {
        ("tcp", 443, 443, "UserIdGroupPairs", "sg-0123456789abcdef0"): {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0", "UserId": "123456789012"}],
        },
        ("tcp", 443, 443, "PrefixListIds", "pl-0123456789abcdef0"): {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "PrefixListIds": [{"PrefixListId": "pl-0123456789abcdef0"}],
        },
    }
