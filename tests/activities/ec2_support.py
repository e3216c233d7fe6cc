"""What the EC2 activity tests share: the demo workload's instance as a target (its owner chose
shutdown-means-terminate), the step input the playbook makes from it, and the members of its Auto Scaling
group.

The `target` fixture is defined as `target_fixture` and registered under the name the tests ask for, so
a test module imports it without its test arguments shadowing the import.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from activities.ec2_context import describe_instance_context
from irflow.models.ec2 import Ec2StepInput, Ec2Target

INCIDENT_ID = "inc-ec2-0001"
ISSUED_BEFORE = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture(name="target")
def target_fixture(workload) -> Ec2Target:
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


def asg_members(workload) -> set[str]:
    autoscaling = boto3.client("autoscaling", region_name=workload.region)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[workload.auto_scaling_group])
    return {i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]}
