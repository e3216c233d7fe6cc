"""Scale-in protection survives containment: the instance is detached from its Auto Scaling group and, when the
incident is undone, re-attached with the protection it had, as the group's owner sees it (moto)."""

from __future__ import annotations

import boto3

from activities.autoscaling import detach_from_auto_scaling, reattach_to_auto_scaling
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance


def _protection(workload) -> dict[str, bool]:
    """Each member of the group and whether it is protected from scale-in."""
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[workload.auto_scaling_group])
    return {i["InstanceId"]: i["ProtectedFromScaleIn"] for i in group["AutoScalingGroups"][0]["Instances"]}


def _protect(workload, instance_id: str, protected: bool) -> None:
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    autoscaling.set_instance_protection(
        InstanceIds=[instance_id], AutoScalingGroupName=workload.auto_scaling_group, ProtectedFromScaleIn=protected
    )


def _new_instances_protected(workload, protected: bool) -> None:
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=workload.auto_scaling_group, NewInstancesProtectedFromScaleIn=protected
    )


def _contain_then_undo(workload, target) -> dict[str, bool]:
    """Detach then re-attach, as the playbook and the incident's undo do; the group's protection at each end."""
    step = step_input(target)
    before = observed_instance(workload)
    assert detach_from_auto_scaling(step).changed is True
    assert workload.instance_id not in _protection(workload), "detached: the group can no longer scale it in"
    assert reattach_to_auto_scaling(step).changed is True
    assert observed_instance(workload) == before, "member again, the group's sizes as they were"
    return _protection(workload)


def test_a_protected_instance_is_protected_again_after_the_undo(workload, target):
    _protect(workload, workload.instance_id, True)
    assert step_input(target).prior.auto_scaling.protected_from_scale_in is True
    protection = _contain_then_undo(workload, target)
    assert protection[workload.instance_id] is True, "the owner's scale-in protection is back"
    assert protection[workload.other_instance_id] is False, "the other member is untouched"


def test_an_unprotected_instance_stays_unprotected_after_the_undo(workload, target):
    _protect(workload, workload.instance_id, False)
    assert step_input(target).prior.auto_scaling.protected_from_scale_in is False
    assert _contain_then_undo(workload, target)[workload.instance_id] is False


def test_an_unprotected_instance_stays_unprotected_in_a_group_that_protects_new_instances(workload, target):
    _new_instances_protected(workload, True)
    _protect(workload, workload.instance_id, False)
    assert step_input(target).prior.auto_scaling.protected_from_scale_in is False
    assert _contain_then_undo(workload, target)[workload.instance_id] is False


def test_a_protected_instance_is_protected_again_in_a_group_that_does_not_protect_new_instances(workload, target):
    _new_instances_protected(workload, False)
    _protect(workload, workload.instance_id, True)
    assert _contain_then_undo(workload, target)[workload.instance_id] is True


def test_the_undo_restores_protection_when_the_instance_was_put_back_by_hand(workload, target):
    """Someone re-attached it already (unprotected, the group's default): the undo still puts the protection back."""
    _protect(workload, workload.instance_id, True)
    step = step_input(target)
    detach_from_auto_scaling(step)
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    autoscaling.attach_instances(InstanceIds=[workload.instance_id], AutoScalingGroupName=workload.auto_scaling_group)
    assert _protection(workload)[workload.instance_id] is False
    reattach_to_auto_scaling(step)
    assert _protection(workload)[workload.instance_id] is True
