"""Take the instance out of its load balancers' target groups, and put it back."""

from __future__ import annotations

from activities.aws import aws_activity, client, typed_aws_errors
from activities.ec2_context import describe_live_instance, target_group_registrations
from irflow.models.ec2 import Ec2StepInput
from irflow.models.incident import StepResult


def _target(step: Ec2StepInput, port: int | None) -> dict:
    return {"Id": step.target.instance_id, **({"Port": port} if port else {})}


def _registered_now(step: Ec2StepInput) -> set[tuple[str, int | None]]:
    found = target_group_registrations(step.target, set(step.prior.vpc_ids))
    return {(r.target_group_arn, r.port) for r in found}


@aws_activity(
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DeregisterTargets",
)
def deregister_from_target_groups(step: Ec2StepInput) -> StepResult:
    """Stop serving users' traffic from a compromised host (and stop the health checks that would fail)."""
    if not step.prior.target_groups:
        return StepResult(changed=False, detail={"reason": "not registered in any target group"})
    still = _registered_now(step)
    elbv2 = client("elbv2", step.target.region, step.target.account_id)
    removed = []
    for registration in step.prior.target_groups:
        if (registration.target_group_arn, registration.port) not in still:
            continue
        with typed_aws_errors(f"deregister {step.target.instance_id} from {registration.target_group_arn}"):
            elbv2.deregister_targets(
                TargetGroupArn=registration.target_group_arn, Targets=[_target(step, registration.port)]
            )
        removed.append(registration.target_group_arn)
    return StepResult(changed=bool(removed), detail={"deregistered": removed})


@aws_activity(
    "ec2:DescribeInstances",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:RegisterTargets",
)
def register_with_target_groups(step: Ec2StepInput) -> StepResult:
    if not step.prior.target_groups:
        return StepResult(changed=False, detail={"reason": "was not registered in any target group"})
    describe_live_instance(step.target)
    present = _registered_now(step)
    elbv2 = client("elbv2", step.target.region, step.target.account_id)
    added = []
    for registration in step.prior.target_groups:
        if (registration.target_group_arn, registration.port) in present:
            continue
        with typed_aws_errors(f"register {step.target.instance_id} with {registration.target_group_arn}"):
            elbv2.register_targets(
                TargetGroupArn=registration.target_group_arn, Targets=[_target(step, registration.port)]
            )
        added.append(registration.target_group_arn)
    return StepResult(changed=bool(added), detail={"registered": added})
