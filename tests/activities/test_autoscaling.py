"""Auto Scaling: an instance is detached from its group, and the group's sizes follow (moto)."""

from __future__ import annotations

import boto3
import pytest

from activities.autoscaling import detach_from_auto_scaling
from tests.activities.ec2_support import (
    asg_members,
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance


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
