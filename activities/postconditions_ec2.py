"""Postcondition checks of the EC2 playbook's steps: each takes the step's own argument (Ec2StepInput) and says,
reading only, whether what the step did still holds.

An instance that is terminated (or shutting down, or gone from describe calls) is not drift for the steps on the
instance itself: nothing is left to re-apply them to. The role revocation outlives the instance and is checked
whatever the instance's state.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, client, typed_aws_errors
from activities.ec2_containment import _attributes, _eni_groups
from activities.ec2_context import (
    DEPARTED_STATES,
    auto_scaling_membership,
    current_profile_association,
    describe_instance,
    interface_groups,
    profile_name_from_arn,
    target_group_registrations,
)
from activities.postconditions_common import (
    QUARANTINE_READ_ACTIONS,
    Verdict,
    check_quarantine_group,
    check_read_only,
    check_role_revocation,
    is_gone,
)
from irflow.models.ec2 import Ec2StepInput
from irflow.models.postconditions import Postcondition
from irflow.models.settings import get_settings


def _live_instance(verdict: Verdict, step: Ec2StepInput) -> dict | None:
    """The instance as EC2 describes it now, or None (noted as gone) when it is terminated or no longer exists."""
    instance_id = step.target.instance_id
    try:
        instance = describe_instance(step.target)
    except ApplicationError as error:
        if not is_gone(error):
            raise
        verdict.vanished(f"instance {instance_id} no longer exists: nothing is left to contain", instance_id)
        return None
    state = instance["State"]["Name"]
    if state in DEPARTED_STATES:
        verdict.vanished(f"instance {instance_id} is {state}: nothing is left to contain", instance_id)
        return None
    return instance


@aws_activity(*check_read_only(("ec2:DescribeInstances", "ec2:DescribeInstanceAttribute")))
def check_protect_instance(step: Ec2StepInput) -> Postcondition:
    """Termination protection is on and a shutdown from inside stops the instance (never terminates it)."""
    verdict = Verdict("protect_instance")
    if _live_instance(verdict, step) is None:
        return verdict.result()
    instance_id = step.target.instance_id
    protected, shutdown = _attributes(step.target)
    if not protected:
        verdict.drifted(f"instance {instance_id} has termination protection off", instance_id)
    if shutdown != "stop":
        verdict.drifted(f"instance {instance_id} is set to {shutdown} on shutdown from inside, not stop", instance_id)
    return verdict.result()


@aws_activity(
    *check_read_only(
        (
            "ec2:DescribeInstances",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeAutoScalingGroups",
        )
    )
)
def check_detach_from_auto_scaling(step: Ec2StepInput) -> Postcondition:
    """The instance is in no Auto Scaling group (when it was in one: else the step had nothing to do)."""
    verdict = Verdict("detach_from_auto_scaling")
    if step.prior.auto_scaling is None:
        verdict.note(f"instance {step.target.instance_id} was not in an Auto Scaling group")
        return verdict.result()
    if _live_instance(verdict, step) is None:
        return verdict.result()
    current = auto_scaling_membership(step.target)
    if current is not None:
        verdict.drifted(
            f"instance {step.target.instance_id} is in Auto Scaling group {current.group_name} again: the group may "
            "terminate it or count it as capacity",
            step.target.instance_id,
            current.group_name,
        )
    return verdict.result()


@aws_activity(
    *check_read_only(
        (
            "ec2:DescribeInstances",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
        )
    )
)
def check_deregister_from_target_groups(step: Ec2StepInput) -> Postcondition:
    """The instance is out of every target group it was taken out of (registrations the step never made are
    not its postcondition: re-applying it would not remove them)."""
    verdict = Verdict("deregister_from_target_groups")
    if not step.prior.target_groups:
        verdict.note(f"instance {step.target.instance_id} was not registered in any target group")
        return verdict.result()
    if _live_instance(verdict, step) is None:
        return verdict.result()
    taken_out = {(r.target_group_arn, r.port) for r in step.prior.target_groups}
    for registration in target_group_registrations(step.target, set(step.prior.vpc_ids)):
        if (registration.target_group_arn, registration.port) in taken_out:
            port = f" (port {registration.port})" if registration.port else ""
            verdict.drifted(
                f"instance {step.target.instance_id} is registered again in target group "
                f"{registration.target_group_arn}{port}: it serves users' traffic",
                step.target.instance_id,
                registration.target_group_arn,
            )
    return verdict.result()


@aws_activity(*check_read_only(("ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", *QUARANTINE_READ_ACTIONS)))
def check_isolate_network(step: Ec2StepInput) -> Postcondition:
    """Every ENI the step isolated carries the quarantine group of its VPC and nothing else; that group still
    allows nothing in and nothing out but HTTPS to the forensic egress; and no ENI attached since carries
    anything else (re-applying the step does not cover such an ENI, but the instance is not isolated).

    An ENI deleted since (with its instance alive, or not) is gone, not drift: there is nothing to isolate."""
    verdict = Verdict("isolate_network")
    instance = _live_instance(verdict, step)
    if instance is None:
        return verdict.result()
    ec2 = client("ec2", step.target.region, step.target.account_id)
    vpcs = sorted({*step.prior.vpc_ids, *(e["VpcId"] for e in instance.get("NetworkInterfaces", []) if "VpcId" in e)})
    quarantine = {vpc: check_quarantine_group(verdict, ec2, vpc) for vpc in vpcs}

    def wanted(vpc_id: str) -> list[str]:
        group = quarantine.get(vpc_id)
        return [group["GroupId"]] if group else []

    attached = interface_groups(instance)  # the instance's answer names every attached interface's groups
    isolated = {eni.network_interface_id for eni in step.prior.network_interfaces}
    for eni in step.prior.network_interfaces:
        groups = attached.get(eni.network_interface_id)
        if groups is None:  # detached since: only its own description tells (or that it is gone)
            try:
                with typed_aws_errors(f"read the groups of {eni.network_interface_id}"):
                    groups = _eni_groups(ec2, eni.network_interface_id)
            except ApplicationError as error:
                if not is_gone(error):
                    raise
                verdict.vanished(f"{eni.network_interface_id} no longer exists", eni.network_interface_id)
                continue
        _compare(verdict, eni.network_interface_id, groups, wanted(eni.vpc_id), "")
    vpc_of = {e["NetworkInterfaceId"]: e.get("VpcId", "") for e in instance.get("NetworkInterfaces", [])}
    note = f" (attached to {step.target.instance_id} since containment)"
    for eni_id, groups in attached.items():
        if eni_id not in isolated:
            _compare(verdict, eni_id, groups, wanted(vpc_of[eni_id]), note)
    return verdict.result()


def _compare(verdict: Verdict, eni_id: str, groups: list[str], wanted: list[str], note: str) -> None:
    if groups == wanted:
        return
    what = f"not only the quarantine group {wanted[0]}" if wanted else "and its VPC has no quarantine group"
    verdict.drifted(f"{eni_id}{note} carries {', '.join(groups) or 'no group'}, {what}", eni_id)


@aws_activity(
    *check_read_only(("ec2:DescribeInstances", "ec2:DescribeIamInstanceProfileAssociations")),
)
def check_replace_instance_profile(step: Ec2StepInput) -> Postcondition:
    """The instance holds the quarantine profile (IRFLOW_QUARANTINE_INSTANCE_PROFILE) or, without one, no
    profile at all: it cannot fetch its own role's credentials again."""
    verdict = Verdict("replace_instance_profile")
    quarantine = get_settings().quarantine_instance_profile
    instance_id = step.target.instance_id
    if step.prior.instance_profile is None and not quarantine:
        verdict.note(f"instance {instance_id} had no instance profile")
        return verdict.result()
    if _live_instance(verdict, step) is None:
        return verdict.result()
    ec2 = client("ec2", step.target.region, step.target.account_id)
    current = current_profile_association(ec2, instance_id)
    name = profile_name_from_arn(current["IamInstanceProfile"]["Arn"]) if current else None
    if quarantine and name != quarantine:
        holding = f"instance profile {name}" if name else "no instance profile"
        verdict.drifted(f"instance {instance_id} holds {holding}, not the quarantine profile {quarantine}", instance_id)
    elif not quarantine and name is not None:
        verdict.drifted(
            f"instance {instance_id} holds instance profile {name} again: containment removed its profile",
            instance_id,
            name,
        )
    return verdict.result()


@aws_activity(*check_read_only(("iam:GetRolePolicy", "iam:GetRole")))
def check_revoke_role_sessions(step: Ec2StepInput) -> Postcondition:
    """Every role behind the instance's profile carries the incident's deny-older-sessions policy, unchanged
    (checked whatever the instance's state: the stolen credentials outlive it)."""
    verdict = Verdict("revoke_role_sessions")
    profile = step.prior.instance_profile
    if profile is None or not profile.role_names:
        verdict.note(f"no role behind the instance profile of {step.target.instance_id}")
        return verdict.result()
    iam = client("iam", step.target.region, step.target.account_id)
    for role in profile.role_names:
        check_role_revocation(verdict, iam, role, step.target.incident_id, step.issued_before)
    return verdict.result()
