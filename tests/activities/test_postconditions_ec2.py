"""The EC2 playbook's postcondition checks, against moto: each holds once its step ran, says what drifted when
someone undoes part of the containment from outside, and holds again once the step is re-applied. A terminated
instance (or a deleted ENI) is gone, not drift."""

from __future__ import annotations

import json

import boto3
import pytest

from activities.postconditions import POSTCONDITIONS
from activities.postconditions_ec2 import (
    check_deregister_from_target_groups,
    check_detach_from_auto_scaling,
    check_isolate_network,
    check_protect_instance,
    check_replace_instance_profile,
    check_revoke_role_sessions,
)
from irflow.models.settings import get_settings
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import act
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS

STEPS = {step.name: step for step in EC2_CONTAINMENT_STEPS}
SSH_FROM_ANYWHERE = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
ALL_OUT = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


def check(name: str, step):
    """The step's check on the argument the playbook gives the step."""
    return POSTCONDITIONS[name](STEPS[name].argument(step))


def reapply(name: str, step):
    return act(STEPS[name], step)


def contain(target):
    step = step_input(target)
    for containment in EC2_CONTAINMENT_STEPS:
        act(containment, step)
    return step


@pytest.fixture
def contained(target):
    return contain(target)


def ec2(workload):
    return boto3.client("ec2", region_name=workload.region)


def quarantine_of(workload, step) -> str:
    return reapply("isolate_network", step).detail["quarantine_groups"][workload.vpc_id]


def test_before_containment_every_check_sees_the_instance_uncontained(workload, target):
    step = step_input(target)
    for name in STEPS:
        result = check(name, step)
        assert result.step == name
        assert result.holds is False, f"{name} holds before its step ran: {result.found}"
        assert result.found and result.resources, name


def test_after_containment_every_check_holds(workload, contained):
    for name in STEPS:
        result = check(name, contained)
        assert (result.holds, result.gone) == (True, []), f"{name}: {result.found}"


def test_protection_lifted_from_outside_is_drift_until_the_step_runs_again(workload, contained):
    ec2(workload).modify_instance_attribute(InstanceId=workload.instance_id, DisableApiTermination={"Value": False})
    ec2(workload).modify_instance_attribute(
        InstanceId=workload.instance_id, InstanceInitiatedShutdownBehavior={"Value": "terminate"}
    )
    result = check_protect_instance(contained)
    assert result.holds is False
    assert "termination protection off" in result.found and "terminate on shutdown" in result.found
    assert result.resources == [workload.instance_id]
    reapply("protect_instance", contained)
    assert check_protect_instance(contained).holds is True


def test_an_instance_put_back_in_its_auto_scaling_group_is_drift(workload, contained):
    boto3.client("autoscaling", region_name=workload.region).attach_instances(
        InstanceIds=[workload.instance_id], AutoScalingGroupName=workload.auto_scaling_group
    )
    result = check_detach_from_auto_scaling(contained)
    assert result.holds is False
    assert f"Auto Scaling group {workload.auto_scaling_group} again" in result.found
    assert result.resources == [workload.instance_id, workload.auto_scaling_group]
    reapply("detach_from_auto_scaling", contained)
    assert check_detach_from_auto_scaling(contained).holds is True


def test_an_instance_registered_again_in_its_target_group_is_drift(workload, contained):
    assert contained.prior.target_groups, "the demo instance serves through a target group"
    boto3.client("elbv2", region_name=workload.region).register_targets(
        TargetGroupArn=workload.target_group_arn, Targets=[{"Id": workload.instance_id}]
    )
    result = check_deregister_from_target_groups(contained)
    assert result.holds is False
    assert f"registered again in target group {workload.target_group_arn}" in result.found
    assert workload.target_group_arn in result.resources
    reapply("deregister_from_target_groups", contained)
    assert check_deregister_from_target_groups(contained).holds is True


def test_enis_given_their_old_groups_back_are_drift_naming_each_eni_and_its_groups(workload, contained):
    quarantine = quarantine_of(workload, contained)
    for eni in contained.prior.network_interfaces:
        ec2(workload).modify_network_interface_attribute(
            NetworkInterfaceId=eni.network_interface_id, Groups=eni.group_ids
        )
    result = check_isolate_network(contained)
    assert result.holds is False
    for eni in contained.prior.network_interfaces:
        assert f"{eni.network_interface_id} carries {', '.join(sorted(eni.group_ids))}" in result.found
    assert f"not only the quarantine group {quarantine}" in result.found
    assert result.resources == [e.network_interface_id for e in contained.prior.network_interfaces]
    reapply("isolate_network", contained)
    assert check_isolate_network(contained).holds is True


def test_one_eni_with_an_extra_group_is_drift(workload, contained):
    quarantine = quarantine_of(workload, contained)
    eni = contained.prior.network_interfaces[0].network_interface_id
    ec2(workload).modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[quarantine, workload.web_group_id])
    result = check_isolate_network(contained)
    assert result.holds is False and result.resources == [eni]
    assert ", ".join(sorted([quarantine, workload.web_group_id])) in result.found


@pytest.mark.parametrize(
    "loosen, words",
    [
        ("authorize_security_group_ingress", "allows in tcp 22 from 0.0.0.0/0"),
        ("authorize_security_group_egress", "allows out all traffic to 0.0.0.0/0"),
    ],
    ids=["ingress", "egress"],
)
def test_a_loosened_quarantine_group_is_drift_even_with_every_eni_in_it(workload, contained, loosen, words):
    quarantine = quarantine_of(workload, contained)
    rule = SSH_FROM_ANYWHERE if loosen.endswith("ingress") else ALL_OUT
    getattr(ec2(workload), loosen)(GroupId=quarantine, IpPermissions=[rule])
    result = check_isolate_network(contained)
    assert result.holds is False
    assert f"quarantine group {quarantine} {words}" in result.found
    assert result.resources == [quarantine]
    reapply("isolate_network", contained)  # isolation reconciles the group's rules
    assert check_isolate_network(contained).holds is True


def test_the_forensic_egress_is_not_drift_but_without_it_configured_it_would_be(workload, contained, monkeypatch):
    assert get_settings().forensic_egress, "the demo workload configures the forensic egress"
    assert check_isolate_network(contained).holds is True
    monkeypatch.setenv("IRFLOW_FORENSIC_EGRESS", "")
    get_settings.cache_clear()
    result = check_isolate_network(contained)
    assert result.holds is False
    assert "allows out" in result.found and f"tcp 443 to {workload.endpoint_group_id}" in result.found
    assert "it must allow nothing out" in result.found


def test_an_eni_attached_since_containment_with_open_groups_is_drift(workload, contained):
    instance = ec2(workload).describe_instances(InstanceIds=[workload.instance_id])["Reservations"][0]["Instances"][0]
    eni = ec2(workload).create_network_interface(SubnetId=instance["SubnetId"], Groups=[workload.web_group_id])[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    ec2(workload).attach_network_interface(NetworkInterfaceId=eni, InstanceId=workload.instance_id, DeviceIndex=2)
    result = check_isolate_network(contained)
    assert result.holds is False
    assert f"{eni} (attached to {workload.instance_id} since containment) carries {workload.web_group_id}" in (
        result.found
    )


def test_a_secondary_eni_deleted_since_is_gone_not_drift(workload, contained):
    secondary = next(e for e in contained.prior.network_interfaces if e.device_index == 1).network_interface_id
    attachment = ec2(workload).describe_network_interfaces(NetworkInterfaceIds=[secondary])["NetworkInterfaces"][0][
        "Attachment"
    ]["AttachmentId"]
    ec2(workload).detach_network_interface(AttachmentId=attachment)
    ec2(workload).delete_network_interface(NetworkInterfaceId=secondary)
    result = check_isolate_network(contained)
    assert (result.holds, result.gone) == (True, [secondary])
    assert f"{secondary} no longer exists" in result.found


def test_the_instances_own_profile_associated_again_is_drift(workload, contained):
    quarantine = get_settings().quarantine_instance_profile
    assert quarantine, "the demo workload configures a quarantine profile"
    association = ec2(workload).describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [workload.instance_id]}]
    )["IamInstanceProfileAssociations"][0]
    ec2(workload).replace_iam_instance_profile_association(
        IamInstanceProfile={"Name": workload.instance_profile}, AssociationId=association["AssociationId"]
    )
    result = check_replace_instance_profile(contained)
    assert result.holds is False
    assert f"holds instance profile {workload.instance_profile}, not the quarantine profile {quarantine}" in (
        result.found
    )
    reapply("replace_instance_profile", contained)
    assert check_replace_instance_profile(contained).holds is True


def test_without_a_quarantine_profile_any_profile_associated_again_is_drift(workload, target, monkeypatch):
    monkeypatch.setenv("IRFLOW_QUARANTINE_INSTANCE_PROFILE", "")
    monkeypatch.setenv("IRFLOW_FORENSIC_EGRESS", "")  # the forensic egress needs the quarantine profile
    get_settings.cache_clear()
    step = contain(target)
    assert check_replace_instance_profile(step).holds is True
    ec2(workload).associate_iam_instance_profile(
        IamInstanceProfile={"Name": workload.instance_profile}, InstanceId=workload.instance_id
    )
    result = check_replace_instance_profile(step)
    assert result.holds is False
    assert f"instance profile {workload.instance_profile} again" in result.found
    assert result.resources == [workload.instance_id, workload.instance_profile]
    reapply("replace_instance_profile", step)
    assert check_replace_instance_profile(step).holds is True


def test_the_revocation_policy_deleted_or_weakened_is_drift(workload, contained):
    iam = boto3.client("iam", region_name=workload.region)
    [policy] = [p for p in iam.list_role_policies(RoleName=workload.role_name)["PolicyNames"] if "revoke" in p]
    iam.delete_role_policy(RoleName=workload.role_name, PolicyName=policy)
    result = check_revoke_role_sessions(contained)
    assert result.holds is False
    assert f"role {workload.role_name} lacks the revocation policy {policy}" in result.found
    assert "2025-03-14T09:26:53Z work again" in result.found and result.resources == [workload.role_name]
    reapply("revoke_role_sessions", contained)
    assert check_revoke_role_sessions(contained).holds is True

    weakened = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:none", "Resource": "*"}]}
    iam.put_role_policy(RoleName=workload.role_name, PolicyName=policy, PolicyDocument=json.dumps(weakened))
    result = check_revoke_role_sessions(contained)
    assert result.holds is False and "is not the one containment wrote" in result.found
    reapply("revoke_role_sessions", contained)
    assert check_revoke_role_sessions(contained).holds is True


def test_a_terminated_instance_is_gone_not_drift_but_its_roles_revocation_is_still_checked(workload, contained):
    ec2(workload).modify_instance_attribute(InstanceId=workload.instance_id, DisableApiTermination={"Value": False})
    ec2(workload).terminate_instances(InstanceIds=[workload.instance_id])
    for name in STEPS.keys() - {"revoke_role_sessions", "tag_resource"}:
        result = check(name, contained)
        assert (result.holds, result.gone) == (True, [workload.instance_id]), name
        assert "is terminated: nothing is left to contain" in result.found
    iam = boto3.client("iam", region_name=workload.region)
    for policy in iam.list_role_policies(RoleName=workload.role_name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=workload.role_name, PolicyName=policy)
    assert check_revoke_role_sessions(contained).holds is False


def test_steps_with_nothing_to_do_hold_and_say_why(workload, target):
    step = step_input(target)
    bare = step.model_copy(
        update={
            "prior": step.prior.model_copy(update={"auto_scaling": None, "target_groups": [], "instance_profile": None})
        }
    )
    for check_fn, words in (
        (check_detach_from_auto_scaling, "was not in an Auto Scaling group"),
        (check_deregister_from_target_groups, "was not registered in any target group"),
        (check_revoke_role_sessions, "no role behind the instance profile"),
    ):
        result = check_fn(bare)
        assert result.holds is True and words in result.found
