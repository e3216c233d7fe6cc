"""EC2 containment steps and their undos, checked the way a responder would check them in AWS (moto): the
instance's own steps (tags, protection, network isolation) one by one, then every step of the playbook
walked together: each idempotent, each undone exactly. The other modules' steps (Auto Scaling, load
balancing, IAM) have their effects checked in their own test files."""

from __future__ import annotations

import boto3
import pytest

from activities.autoscaling import detach_from_auto_scaling, reattach_to_auto_scaling
from activities.aws import client
from activities.ec2_containment import (
    MANAGED_TAG,
    isolate_network,
    protect_instance,
    restore_instance_protection,
    restore_network,
)
from activities.iam import (
    remove_session_revocation,
    replace_instance_profile,
    restore_instance_profile,
    revoke_role_sessions,
)
from activities.load_balancing import deregister_from_target_groups, register_with_target_groups
from activities.tagging import restore_resource_tags, tag_resource
from irflow.models.settings import get_settings
from irflow.models.tagging import tag_request_for
from tests.activities.ec2_support import (
    INCIDENT_ID,
    asg_members,
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import act, observed_instance, only_forensic_egress, quarantine_groups, undo
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS

EVERYONE = ("0.0.0.0/0", "::/0")
SSH_FROM_ANYWHERE = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}

PAIRS = [
    (isolate_network, restore_network),  # first, alone: containment at the speed of the API
    (tag_resource, restore_resource_tags),
    (protect_instance, restore_instance_protection),
    (detach_from_auto_scaling, reattach_to_auto_scaling),
    (deregister_from_target_groups, register_with_target_groups),
    (replace_instance_profile, restore_instance_profile),
    (revoke_role_sessions, remove_session_revocation),
]
STEPS = list(EC2_CONTAINMENT_STEPS)
STEP_IDS = [step.name for step in STEPS]


def security_group(workload, group_id: str) -> dict:
    ec2 = boto3.client("ec2", region_name=workload.region)
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def groups_with_role(workload, role: str) -> list[dict]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    return ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [workload.vpc_id]}, {"Name": "tag:irflow:role", "Values": [role]}]
    )["SecurityGroups"]


def allows_everyone(permissions: list[dict]) -> bool:
    everything = [p for p in permissions if p["IpProtocol"] == "-1"]
    v4 = {r["CidrIp"] for p in everything for r in p.get("IpRanges", [])}
    v6 = {r["CidrIpv6"] for p in everything for r in p.get("Ipv6Ranges", [])}
    return EVERYONE[0] in v4 and EVERYONE[1] in v6


def quarantine_profiles(workload) -> list[str]:
    """The instance's profiles while contained: the quarantine profile, if one is configured, else none."""
    name = get_settings().quarantine_instance_profile
    return [f"arn:aws:iam::{workload.account_id}:instance-profile/{name}"] if name else []


def test_step_pairs_are_the_playbooks():
    assert [(c.activity, c.undo) for c in EC2_CONTAINMENT_STEPS] == PAIRS


# --- each step's effect, as seen in AWS ---


def test_tag_instance_marks_the_instance_and_keeps_its_tags(workload, target):
    before = observed_instance(workload)
    assert tag_resource(tag_request_for(step_input(target))).changed is True
    tags = observed_instance(workload)["tags"]
    assert tags == {**before["tags"], "irflow:incident-id": INCIDENT_ID, "irflow:status": "contained"}


def test_protect_instance_turns_on_termination_protection_and_stop_on_shutdown(workload, target):
    assert observed_instance(workload)["shutdown_behavior"] == "terminate"
    assert protect_instance(step_input(target)).changed is True
    after = observed_instance(workload)
    assert after["termination_protection"] is True
    assert after["shutdown_behavior"] == "stop"


def test_isolate_network_puts_every_eni_in_the_quarantine_group(workload, target):
    step = step_input(target)
    assert len(step.prior.network_interfaces) == 2
    assert isolate_network(step).changed is True
    [quarantine] = quarantine_groups(workload)
    assert quarantine["IpPermissions"] == [] and only_forensic_egress(quarantine["IpPermissionsEgress"])
    assert observed_instance(workload)["enis"] == {
        eni.network_interface_id: [quarantine["GroupId"]] for eni in step.prior.network_interfaces
    }
    [untrack] = groups_with_role(workload, "untrack")
    assert allows_everyone(untrack["IpPermissions"]) and allows_everyone(untrack["IpPermissionsEgress"])


def test_isolation_groups_are_marked_as_irflows_when_they_are_created(workload, target):
    created = []
    ec2 = client("ec2", target.region, target.account_id)  # the client the activity uses
    ec2.meta.events.register(
        "provide-client-params.ec2.CreateSecurityGroup", lambda params, **_: created.append(params)
    )
    isolate_network(step_input(target))
    assert len(created) == 2, "the untrack and the quarantine group"
    for params in created:  # marked in the call that creates it: never a moment unmarked
        [spec] = params["TagSpecifications"]
        assert {"Key": MANAGED_TAG, "Value": "true"} in spec["Tags"]
    for role in ("untrack", "quarantine"):
        [group] = groups_with_role(workload, role)
        assert {t["Key"]: t["Value"] for t in group["Tags"]}[MANAGED_TAG] == "true"


def test_isolate_network_tightens_a_hand_made_quarantine_group(workload, target):
    ec2 = boto3.client("ec2", region_name=workload.region)
    loosened = ec2.create_security_group(GroupName="irflow-quarantine", Description="by hand", VpcId=workload.vpc_id)
    ec2.authorize_security_group_ingress(GroupId=loosened["GroupId"], IpPermissions=[SSH_FROM_ANYWHERE])
    assert security_group(workload, loosened["GroupId"])["IpPermissions"] != []
    isolate_network(step_input(target))
    assert [g["GroupId"] for g in quarantine_groups(workload)] == [loosened["GroupId"]]
    adopted = security_group(workload, loosened["GroupId"])
    assert adopted["IpPermissions"] == [] and only_forensic_egress(adopted["IpPermissionsEgress"])
    assert set(map(tuple, observed_instance(workload)["enis"].values())) == {(loosened["GroupId"],)}
    assert {t["Key"]: t["Value"] for t in adopted["Tags"]}[MANAGED_TAG] == "true"


def test_isolate_network_tightens_its_own_group_loosened_after_isolation(workload, target):
    step = step_input(target)
    isolate_network(step)
    [quarantine] = quarantine_groups(workload)
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.authorize_security_group_ingress(GroupId=quarantine["GroupId"], IpPermissions=[SSH_FROM_ANYWHERE])
    isolate_network(step)
    again = security_group(workload, quarantine["GroupId"])
    assert again["IpPermissions"] == [] and only_forensic_egress(again["IpPermissionsEgress"])


# --- idempotency ---


@pytest.mark.parametrize("containment", STEPS, ids=STEP_IDS)
def test_each_step_changes_nothing_the_second_time(workload, target, containment):
    step = step_input(target)
    assert act(containment, step).changed is True
    once = observed_instance(workload)
    assert act(containment, step).changed is False
    assert observed_instance(workload) == once
    assert len(quarantine_groups(workload)) == (1 if containment.activity is isolate_network else 0)
    assert len(once["role_policies"]) == (1 if containment.activity is revoke_role_sessions else 0)


def test_all_steps_twice_leave_the_state_of_once(workload, target):
    step = step_input(target)
    for containment in STEPS:
        act(containment, step)
    once = observed_instance(workload)
    assert [act(containment, step).changed for containment in STEPS] == [False] * len(STEPS)
    assert observed_instance(workload) == once
    assert len(quarantine_groups(workload)) == 1 and len(groups_with_role(workload, "untrack")) == 1
    assert once["role_policies"] == [f"irflow-revoke-sessions-{INCIDENT_ID}"]


# --- exact undo ---


@pytest.mark.parametrize("containment", STEPS, ids=STEP_IDS)
def test_each_undo_restores_exactly_and_twice_is_harmless(workload, target, containment):
    step = step_input(target)
    before = observed_instance(workload)
    assert act(containment, step).changed is True
    assert observed_instance(workload) != before
    assert undo(containment, step).changed is True
    assert observed_instance(workload) == before
    assert undo(containment, step).changed is False
    assert observed_instance(workload) == before


@pytest.mark.parametrize("containment", STEPS, ids=STEP_IDS)
def test_undo_without_the_step_changes_nothing(workload, target, containment):
    step = step_input(target)
    before = observed_instance(workload)
    assert undo(containment, step).changed is False
    assert observed_instance(workload) == before


def test_all_steps_then_all_undos_in_reverse_restore_exactly(workload, target):
    step = step_input(target)
    before = observed_instance(workload)
    for containment in STEPS:
        act(containment, step)
    contained = observed_instance(workload)
    assert contained["asg_member"] == [] and contained["target_groups"] == []
    assert contained["profiles"] == quarantine_profiles(workload)
    for containment in reversed(STEPS):
        undo(containment, step)
    assert observed_instance(workload) == before
    assert asg_members(workload) == {workload.instance_id, workload.other_instance_id}


def test_existing_irflow_status_tag_is_restored_to_its_old_value(workload, target):
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.create_tags(Resources=[workload.instance_id], Tags=[{"Key": "irflow:status", "Value": "released"}])
    step = step_input(target)
    before = observed_instance(workload)
    tag_resource(tag_request_for(step))
    assert observed_instance(workload)["tags"]["irflow:status"] == "contained"
    restore_resource_tags(tag_request_for(step))
    assert observed_instance(workload) == before
