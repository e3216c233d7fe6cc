"""Detection & analysis for an instance: learn everything containment will change, before it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from activities.aws import aws_activity, client, error_code, not_found, side_by_side, tag_pairs, typed_aws_errors
from irflow.models.ec2 import (
    AutoScalingMembership,
    Ec2StepInput,
    Ec2Target,
    InstanceContext,
    InstanceProfileState,
    NetworkInterfaceState,
    TargetGroupRegistration,
    VolumeAttachment,
)


def describe_instance(target: Ec2Target) -> dict:
    ec2 = client("ec2", target.region, target.account_id)
    with typed_aws_errors(f"describe instance {target.instance_id}"):
        reservations = ec2.describe_instances(InstanceIds=[target.instance_id])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances:
        raise not_found(f"instance {target.instance_id} does not exist in {target.account_id}/{target.region}")
    return instances[0]


# The interfaces' groups before isolation, recorded on the instance (by `isolate_network`, before it moves any
# interface) as tags keyed by the incident: `irflow:prior:<incident id>#<n>`, the chunks of
# "eni-1=sg-a,sg-b;eni-2=sg-c". The first look runs as a local activity, in the workflow task that isolates: a worker
# dying after isolation and before that task completed leaves a replay that looks again, at quarantined interfaces,
# and takes the record instead (issue 16).
PRIOR_TAG = "irflow:prior:"
_TAG_VALUE_LIMIT = 256


def prior_record_tags(incident_id: str, enis: list[NetworkInterfaceState]) -> dict[str, str]:
    """The record of `enis`' groups, as the tags that hold it."""
    text = ";".join(f"{eni.network_interface_id}={','.join(eni.group_ids)}" for eni in enis)
    chunks = [text[i : i + _TAG_VALUE_LIMIT] for i in range(0, len(text), _TAG_VALUE_LIMIT)] or [""]
    return {f"{PRIOR_TAG}{incident_id}#{n}": chunk for n, chunk in enumerate(chunks)}


def recorded_groups(tags: dict[str, str], incident_id: str) -> dict[str, list[str]] | None:
    """Each interface's groups as the incident recorded them before isolating; None without a record."""
    prefix = f"{PRIOR_TAG}{incident_id}#"
    chunks = sorted(
        (int(k[len(prefix) :]), v) for k, v in tags.items() if k.startswith(prefix) and k[len(prefix) :].isdigit()
    )
    if not chunks:
        return None
    text = "".join(value for _, value in chunks)
    entries = (entry.split("=", 1) for entry in text.split(";") if "=" in entry)
    return {eni: sorted(g for g in groups.split(",") if g) for eni, groups in entries}


# An instance in these states is gone for incident response: nothing left to contain, tag or restore.
DEPARTED_STATES = ("terminated", "shutting-down")


def interface_groups(instance: dict) -> dict[str, list[str]]:
    """Each attached interface's groups, sorted, as a DescribeInstances answer names them."""
    return {
        eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni.get("Groups", []))
        for eni in instance.get("NetworkInterfaces", [])
    }


def describe_live_instance(target: Ec2Target) -> dict:
    """The instance, or ResourceNotFound when it is gone (terminated instances linger in describe calls)."""
    instance = describe_instance(target)
    if instance["State"]["Name"] in DEPARTED_STATES:
        raise not_found(f"instance {target.instance_id} is {instance['State']['Name']}: it vanished mid-incident")
    return instance


def current_profile_association(ec2, instance_id: str) -> dict | None:
    with typed_aws_errors(f"describe instance profile association of {instance_id}"):
        associations = ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}]
        )["IamInstanceProfileAssociations"]
    live = [a for a in associations if a.get("State") in ("associated", "associating")]
    return live[0] if live else None


def profile_name_from_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def auto_scaling_membership(target: Ec2Target) -> AutoScalingMembership | None:
    region, instance_id = target.region, target.instance_id
    autoscaling = client("autoscaling", region, target.account_id)
    with typed_aws_errors(f"describe Auto Scaling membership of {instance_id}"):
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        if not found:
            return None
        name = found[0]["AutoScalingGroupName"]
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return AutoScalingMembership(
        group_name=name,
        min_size=group["MinSize"],
        max_size=group["MaxSize"],
        desired_capacity=group["DesiredCapacity"],
        protected_from_scale_in=bool(found[0].get("ProtectedFromScaleIn", False)),
    )


def target_group_registrations(target: Ec2Target, vpc_ids: set[str]) -> list[TargetGroupRegistration]:
    region, instance_id = target.region, target.instance_id
    elbv2 = client("elbv2", region, target.account_id)
    registrations: list[TargetGroupRegistration] = []
    with typed_aws_errors(f"find target groups of {instance_id}"):
        for page in elbv2.get_paginator("describe_target_groups").paginate():
            for group in page["TargetGroups"]:
                if group.get("TargetType", "instance") != "instance" or group.get("VpcId") not in vpc_ids:
                    continue
                health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
                for target in health["TargetHealthDescriptions"]:
                    # A deregistered target stays listed as "draining" for the deregistration delay:
                    # it no longer receives traffic, so it does not count as registered.
                    draining = target.get("TargetHealth", {}).get("State") == "draining"
                    if target["Target"]["Id"] == instance_id and not draining:
                        registrations.append(
                            TargetGroupRegistration(
                                target_group_arn=group["TargetGroupArn"],
                                port=target["Target"].get("Port"),
                                availability_zone=target["Target"].get("AvailabilityZone"),
                            )
                        )
    return sorted(registrations, key=lambda r: (r.target_group_arn, r.port or 0))


def instance_profile_state(target: Ec2Target) -> InstanceProfileState | None:
    """The profile the instance holds now and its roles; None without one. A profile deleted while still
    associated holds no role."""
    region, instance_id = target.region, target.instance_id
    ec2 = client("ec2", region, target.account_id)
    association = current_profile_association(ec2, instance_id)
    if association is None:
        return None
    arn = association["IamInstanceProfile"]["Arn"]
    name = profile_name_from_arn(arn)
    iam = client("iam", region, target.account_id)
    with typed_aws_errors(f"read instance profile {name}"):
        try:
            roles = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
            roles = []
    return InstanceProfileState(
        association_id=association["AssociationId"],
        profile_arn=arn,
        profile_name=name,
        role_names=[r["RoleName"] for r in roles],
        role_ids=[r["RoleId"] for r in roles],
    )


def _volume_details(ec2, volumes: list[VolumeAttachment]) -> list[VolumeAttachment]:
    """Each attached volume with its size and encryption (one DescribeVolumes)."""
    if not volumes:
        return volumes
    with typed_aws_errors("describe volumes"):
        found = ec2.describe_volumes(VolumeIds=[v.volume_id for v in volumes])["Volumes"]
    described = {v["VolumeId"]: v for v in found}
    return [
        v.model_copy(
            update={
                "size_gib": described.get(v.volume_id, {}).get("Size"),
                "encrypted": described.get(v.volume_id, {}).get("Encrypted"),
            }
        )
        for v in volumes
    ]


def _attribute(ec2, instance_id: str, attribute: str) -> Any:
    """One instance attribute's value (DescribeInstanceAttribute names the answer like the attribute)."""
    with typed_aws_errors(f"describe {attribute} of {instance_id}"):
        answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=attribute)
    return answer[attribute[0].upper() + attribute[1:]]["Value"]


def _first_look(target: Ec2Target) -> InstanceContext:
    """What one DescribeInstances tells: state, interfaces and their groups, volumes, tags. Enough to decide
    and to isolate; `enriched=False` until `_enriched` adds what the other steps need."""
    instance = describe_instance(target)
    enis = [
        NetworkInterfaceState(
            network_interface_id=eni["NetworkInterfaceId"],
            vpc_id=eni["VpcId"],
            subnet_id=eni.get("SubnetId"),
            device_index=eni.get("Attachment", {}).get("DeviceIndex", 0),
            group_ids=interface_groups({"NetworkInterfaces": [eni]})[eni["NetworkInterfaceId"]],
            private_ip=eni.get("PrivateIpAddress"),
            public_ip=eni.get("Association", {}).get("PublicIp"),
        )
        for eni in instance.get("NetworkInterfaces", [])
    ]
    enis.sort(key=lambda e: (e.device_index, e.network_interface_id))
    volumes = [
        VolumeAttachment(
            volume_id=m["Ebs"]["VolumeId"],
            device_name=m["DeviceName"],
            delete_on_termination=bool(m["Ebs"].get("DeleteOnTermination", False)),
        )
        for m in instance.get("BlockDeviceMappings", [])
        if "Ebs" in m
    ]
    return InstanceContext(
        instance_id=target.instance_id,
        account_id=target.account_id,
        region=target.region,
        state=instance["State"]["Name"],
        instance_type=instance.get("InstanceType"),
        image_id=instance.get("ImageId"),
        platform=instance.get("Platform") or instance.get("PlatformDetails"),
        launch_time=instance.get("LaunchTime"),
        availability_zone=instance.get("Placement", {}).get("AvailabilityZone"),
        vpc_id=instance.get("VpcId"),
        network_interfaces=enis,
        volumes=volumes,
        tags=tag_pairs(instance.get("Tags")),
        enriched=False,
        captured_at=datetime.now(UTC),
    )


def _enriched(target: Ec2Target, context: InstanceContext, still_there: bool = False) -> InstanceContext:
    """The first look plus everything else containment changes, read side by side (about three round trips,
    not ten). The interfaces stay as the first look saw them: isolation may have changed them since.
    `still_there`: and the instance is still alive, side by side with the rest (its NotFound is raised first)."""
    ec2 = client("ec2", target.region, target.account_id)
    alive = [lambda: describe_live_instance(target)] if still_there else []
    *_, volumes, termination, shutdown, auto_scaling, target_groups, profile = side_by_side(
        *alive,
        lambda: _volume_details(ec2, context.volumes),
        lambda: _attribute(ec2, target.instance_id, "disableApiTermination"),
        lambda: _attribute(ec2, target.instance_id, "instanceInitiatedShutdownBehavior"),
        lambda: auto_scaling_membership(target),
        lambda: target_group_registrations(target, set(context.vpc_ids)),
        lambda: instance_profile_state(target),
    )
    return context.model_copy(
        update={
            "volumes": volumes,
            "disable_api_termination": bool(termination),
            "shutdown_behavior": shutdown,
            "auto_scaling": auto_scaling,
            "target_groups": target_groups,
            "instance_profile": profile,
            "enriched": True,
        }
    )


def observe_instance(target: Ec2Target) -> InstanceContext:
    """Read the instance's current containment-relevant state (also used to verify restorations)."""
    return _enriched(target, _first_look(target))


def _still_there(context: InstanceContext) -> InstanceContext:
    if context.state in DEPARTED_STATES:
        raise not_found(f"instance {context.instance_id} is {context.state}; there is nothing left to contain")
    return context


# What reading the whole prior state (`_first_look` and `_enriched`) calls.
WHOLE_CONTEXT_ACTIONS = (
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeInstanceAttribute",
    "ec2:DescribeIamInstanceProfileAssociations",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "iam:GetInstanceProfile",
)


@aws_activity("ec2:DescribeInstances")
def look_at_instance(target: Ec2Target) -> InstanceContext:
    """Detection & analysis at the speed of the API: one DescribeInstances, enough to decide (state, tags) and
    to isolate (every interface and its groups, the prior state isolation's undo restores). Looking again after
    this incident isolated the instance, the interfaces' groups are the ones it recorded before isolating."""
    context = _still_there(_first_look(target))
    recorded = recorded_groups(context.tags, target.incident_id)
    own = {k: v for k, v in context.tags.items() if not k.startswith(PRIOR_TAG)}  # bookkeeping, not the instance's
    if recorded is None:
        return context.model_copy(update={"tags": own})
    enis = [
        eni.model_copy(update={"group_ids": recorded.get(eni.network_interface_id, eni.group_ids)})
        for eni in context.network_interfaces
    ]
    return context.model_copy(update={"tags": own, "network_interfaces": enis})


@aws_activity(*WHOLE_CONTEXT_ACTIONS)
def enrich_instance_context(step: Ec2StepInput) -> InstanceContext:
    """The rest of the prior state, after the first look (`step.prior`): volumes' details, attributes, Auto
    Scaling group, target groups, instance profile. The interfaces are kept as the first look saw them. An
    instance gone since the first look is ResourceNotFound, said so."""
    return _enriched(step.target, step.prior, still_there=True)


@aws_activity(*WHOLE_CONTEXT_ACTIONS)
def describe_instance_context(target: Ec2Target) -> InstanceContext:
    """The whole prior state in one activity: what incidents opened before the first look (`look_at_instance`) and
    the enrichment (`enrich_instance_context`) were split call, kept registered so their histories replay."""
    return _still_there(observe_instance(target))
