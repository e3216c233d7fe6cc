"""Take the instance out of its Auto Scaling group, and put it back exactly."""

from __future__ import annotations

from activities.aws import aws_activity, client, typed_aws_errors
from activities.ec2_context import auto_scaling_membership, describe_live_instance
from irflow.models.ec2 import Ec2StepInput
from irflow.models.incident import StepResult


@aws_activity(
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:DetachInstances",
)
def detach_from_auto_scaling(step: Ec2StepInput) -> StepResult:
    """Detach so the group can neither terminate the suspect (a failed health check after isolation
    would) nor count it as capacity.

    The desired capacity is decremented so no replacement is launched while the incident is open and
    re-attaching restores the group exactly; when that would go below the minimum, the minimum is
    lowered by one first and restored by the undo.
    """
    prior = step.prior.auto_scaling
    if prior is None:
        return StepResult(changed=False, detail={"reason": "not in an Auto Scaling group"})
    current = auto_scaling_membership(step.target)
    if current is None:
        return StepResult(changed=False, detail={"group": prior.group_name, "reason": "already detached"})
    autoscaling = client("autoscaling", step.target.region, step.target.account_id)
    with typed_aws_errors(f"detach {step.target.instance_id} from {current.group_name}"):
        if current.desired_capacity - 1 < current.min_size:
            autoscaling.update_auto_scaling_group(
                AutoScalingGroupName=current.group_name, MinSize=current.desired_capacity - 1
            )
        autoscaling.detach_instances(
            InstanceIds=[step.target.instance_id],
            AutoScalingGroupName=current.group_name,
            ShouldDecrementDesiredCapacity=True,
        )
    return StepResult(changed=True, detail={"group": current.group_name})


@aws_activity(
    "ec2:DescribeInstances",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:AttachInstances",
    "autoscaling:SetInstanceProtection",
)
def reattach_to_auto_scaling(step: Ec2StepInput) -> StepResult:
    prior = step.prior.auto_scaling
    if prior is None:
        return StepResult(changed=False, detail={"reason": "was not in an Auto Scaling group"})
    describe_live_instance(step.target)  # a vanished instance cannot rejoin: ResourceNotFound, not retries
    autoscaling = client("autoscaling", step.target.region, step.target.account_id)
    changed = []
    with typed_aws_errors(f"re-attach {step.target.instance_id} to {prior.group_name}"):
        current = auto_scaling_membership(step.target)
        if current is None:
            autoscaling.attach_instances(InstanceIds=[step.target.instance_id], AutoScalingGroupName=prior.group_name)
            changed.append("attached")
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[prior.group_name])["AutoScalingGroups"][
            0
        ]
        if group["MinSize"] != prior.min_size:
            autoscaling.update_auto_scaling_group(AutoScalingGroupName=prior.group_name, MinSize=prior.min_size)
            changed.append("min_size")
        # Re-attaching gives the instance the group's "protect new instances" setting, which may differ from
        # the instance's own before the incident: put back exactly what it had.
        now = auto_scaling_membership(step.target)
        if now is not None and now.protected_from_scale_in != prior.protected_from_scale_in:
            autoscaling.set_instance_protection(
                InstanceIds=[step.target.instance_id],
                AutoScalingGroupName=prior.group_name,
                ProtectedFromScaleIn=prior.protected_from_scale_in,
            )
            changed.append("protection")
    return StepResult(changed=bool(changed), detail={"group": prior.group_name, "changed": changed})
