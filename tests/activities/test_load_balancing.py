"""Load balancing: an instance leaves its target groups and the other targets stay; a target still draining
is neither deregistered twice nor left out when the undo registers it again (moto, with deregistered targets
draining as in AWS)."""

from __future__ import annotations

import boto3

from activities.load_balancing import deregister_from_target_groups, register_with_target_groups
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance


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
