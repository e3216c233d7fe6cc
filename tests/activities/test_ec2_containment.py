"""EC2 containment steps and their undos, checked the way a responder would check them in AWS (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities.autoscaling import detach_from_auto_scaling, reattach_to_auto_scaling
from activities.ec2_containment import (
    isolate_network,
    protect_instance,
    restore_instance_protection,
    restore_network,
)
from activities.ec2_context import describe_instance_context
from activities.iam import (
    remove_session_revocation,
    replace_instance_profile,
    restore_instance_profile,
    revoke_role_sessions,
)
from activities.load_balancing import deregister_from_target_groups, register_with_target_groups
from activities.tagging import restore_resource_tags, tag_resource
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.settings import get_settings
from irflow.models.tagging import tag_request_for
from tests.support import observed_instance, quarantine_groups
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS
from workflows.playbook import ContainmentStep

INCIDENT_ID = "inc-ec2-0001"
ISSUED_BEFORE = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
EVERYONE = ("0.0.0.0/0", "::/0")
SSH_FROM_ANYWHERE = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}

PAIRS = [
    (tag_resource, restore_resource_tags),
    (protect_instance, restore_instance_protection),
    (detach_from_auto_scaling, reattach_to_auto_scaling),
    (deregister_from_target_groups, register_with_target_groups),
    (isolate_network, restore_network),
    (replace_instance_profile, restore_instance_profile),
    (revoke_role_sessions, remove_session_revocation),
]
STEPS = list(EC2_CONTAINMENT_STEPS)
STEP_IDS = [step.name for step in STEPS]


def act(containment: ContainmentStep, step: Ec2StepInput):
    """Run a containment step as the playbook does: on the argument it makes from the step input."""
    return containment.activity(containment.argument(step))


def undo(containment: ContainmentStep, step: Ec2StepInput):
    return containment.undo(containment.argument(step))


@pytest.fixture
def target(workload) -> Ec2Target:
    # An instance whose owner chose shutdown-means-terminate: protection must change it and the undo
    # must put it back, which a default instance ("stop") would not show.
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.modify_instance_attribute(
        InstanceId=workload.instance_id, InstanceInitiatedShutdownBehavior={"Value": "terminate"}
    )
    return ec2_target(workload, workload.instance_id)


def ec2_target(workload, instance_id: str) -> Ec2Target:
    return Ec2Target(
        incident_id=INCIDENT_ID, account_id=workload.account_id, region=workload.region, instance_id=instance_id
    )


def step_input(target: Ec2Target) -> Ec2StepInput:
    return Ec2StepInput(target=target, prior=describe_instance_context(target), issued_before=ISSUED_BEFORE)


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


def revocation_policy(workload) -> dict:
    iam = boto3.client("iam", region_name=workload.region)
    document = iam.get_role_policy(RoleName=workload.role_name, PolicyName=f"irflow-revoke-sessions-{INCIDENT_ID}")
    document = document["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def asg_members(workload) -> set[str]:
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[workload.auto_scaling_group])
    return {i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]}


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


@pytest.mark.parametrize("desired", [2, 3], ids=["group-at-its-minimum", "group-with-room"])
def test_detach_from_auto_scaling_decrements_desired_and_lowers_min_only_when_needed(workload, target, desired):
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=workload.auto_scaling_group, DesiredCapacity=desired)
    step = step_input(target)
    min_size, max_size, _ = observed_instance(workload)["asg_sizes"]
    assert detach_from_auto_scaling(step).changed is True
    after = observed_instance(workload)
    assert after["asg_member"] == []
    lowered_min = min_size - 1 if desired - 1 < min_size else min_size
    assert after["asg_sizes"] == (lowered_min, max_size, desired - 1)
    assert workload.other_instance_id in asg_members(workload) - {workload.instance_id}
    assert len(asg_members(workload)) == desired - 1


def test_deregister_from_target_groups_leaves_the_other_targets(workload, target):
    step = step_input(target)
    assert [t.target_group_arn for t in step.prior.target_groups] == [workload.target_group_arn]
    assert deregister_from_target_groups(step).changed is True
    assert observed_instance(workload)["target_groups"] == []
    elbv2 = boto3.client("elbv2", region_name=workload.region)
    health = elbv2.describe_target_health(TargetGroupArn=workload.target_group_arn)["TargetHealthDescriptions"]
    serving = [t["Target"]["Id"] for t in health if t["TargetHealth"]["State"] != "draining"]
    assert serving == [workload.other_instance_id]
    assert (workload.instance_id, "draining") in {(t["Target"]["Id"], t["TargetHealth"]["State"]) for t in health}


def test_isolate_network_puts_every_eni_in_an_empty_quarantine_group(workload, target):
    step = step_input(target)
    assert len(step.prior.network_interfaces) == 2
    assert isolate_network(step).changed is True
    [quarantine] = quarantine_groups(workload)
    assert quarantine["IpPermissions"] == [] and quarantine["IpPermissionsEgress"] == []
    assert observed_instance(workload)["enis"] == {
        eni.network_interface_id: [quarantine["GroupId"]] for eni in step.prior.network_interfaces
    }
    [untrack] = groups_with_role(workload, "untrack")
    assert allows_everyone(untrack["IpPermissions"]) and allows_everyone(untrack["IpPermissionsEgress"])


def test_isolate_network_tightens_a_hand_made_quarantine_group(workload, target):
    ec2 = boto3.client("ec2", region_name=workload.region)
    loosened = ec2.create_security_group(GroupName="irflow-quarantine", Description="by hand", VpcId=workload.vpc_id)
    ec2.authorize_security_group_ingress(GroupId=loosened["GroupId"], IpPermissions=[SSH_FROM_ANYWHERE])
    assert security_group(workload, loosened["GroupId"])["IpPermissions"] != []
    isolate_network(step_input(target))
    assert [g["GroupId"] for g in quarantine_groups(workload)] == [loosened["GroupId"]]
    adopted = security_group(workload, loosened["GroupId"])
    assert adopted["IpPermissions"] == [] and adopted["IpPermissionsEgress"] == []
    assert set(map(tuple, observed_instance(workload)["enis"].values())) == {(loosened["GroupId"],)}


def test_isolate_network_tightens_its_own_group_loosened_after_isolation(workload, target):
    step = step_input(target)
    isolate_network(step)
    [quarantine] = quarantine_groups(workload)
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.authorize_security_group_ingress(GroupId=quarantine["GroupId"], IpPermissions=[SSH_FROM_ANYWHERE])
    isolate_network(step)
    again = security_group(workload, quarantine["GroupId"])
    assert again["IpPermissions"] == [] and again["IpPermissionsEgress"] == []


def test_replace_instance_profile_removes_the_profile_by_default(workload, target):
    assert observed_instance(workload)["profiles"] != []
    assert replace_instance_profile(step_input(target)).changed is True
    assert observed_instance(workload)["profiles"] == []


@pytest.fixture
def quarantine_profile(workload, monkeypatch) -> str:
    iam = boto3.client("iam", region_name=workload.region)
    arn = iam.create_instance_profile(InstanceProfileName="irflow-quarantine-profile")["InstanceProfile"]["Arn"]
    monkeypatch.setenv("IRFLOW_QUARANTINE_INSTANCE_PROFILE", "irflow-quarantine-profile")
    get_settings.cache_clear()
    return arn


def test_replace_instance_profile_swaps_in_the_configured_quarantine_profile(workload, target, quarantine_profile):
    step = step_input(target)
    assert replace_instance_profile(step).changed is True
    assert observed_instance(workload)["profiles"] == [quarantine_profile]
    assert replace_instance_profile(step).changed is False
    before_profile = step.prior.instance_profile.profile_arn
    restore_instance_profile(step)
    assert observed_instance(workload)["profiles"] == [before_profile]


@pytest.mark.parametrize(
    "issued_before",
    [ISSUED_BEFORE, ISSUED_BEFORE.astimezone(timezone(timedelta(hours=-5)))],
    ids=["utc", "other-zone"],
)
def test_revoke_role_sessions_denies_everything_to_older_tokens(workload, target, issued_before):
    step = step_input(target).model_copy(update={"issued_before": issued_before})
    assert revoke_role_sessions(step).changed is True
    [statement] = revocation_policy(workload)["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*" and statement["Resource"] == "*"
    iso_z = ISSUED_BEFORE.isoformat().replace("+00:00", "Z")
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": iso_z}}
    assert observed_instance(workload)["role_policies"] == [f"irflow-revoke-sessions-{INCIDENT_ID}"]


def test_unknown_instance_is_a_non_retryable_not_found(workload):
    with pytest.raises(ApplicationError) as raised:
        describe_instance_context(ec2_target(workload, "i-0000000000000000a"))
    assert raised.value.type == "ResourceNotFound"
    assert raised.value.non_retryable is True


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
    assert contained["asg_member"] == [] and contained["target_groups"] == [] and contained["profiles"] == []
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


# --- AWS keeps deregistered targets listed as "draining"; moto drops them at once ---


def target_states(workload) -> set[tuple[str, str]]:
    elbv2 = boto3.client("elbv2", region_name=workload.region)
    health = elbv2.describe_target_health(TargetGroupArn=workload.target_group_arn)["TargetHealthDescriptions"]
    return {(t["Target"]["Id"], t["TargetHealth"]["State"]) for t in health}


def test_undo_of_deregistration_while_draining_registers_again(workload, target):
    step = step_input(target)
    deregister_from_target_groups(step)
    assert (workload.instance_id, "draining") in target_states(workload)
    register_with_target_groups(step)
    assert {i for i, state in target_states(workload) if state != "draining"} == {
        workload.instance_id,
        workload.other_instance_id,
    }


def test_deregistration_while_draining_is_not_repeated(workload, target):
    step = step_input(target)
    assert deregister_from_target_groups(step).changed is True
    assert deregister_from_target_groups(step).changed is False
