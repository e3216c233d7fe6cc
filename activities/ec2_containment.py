"""EC2 containment steps that touch the instance itself, each with its exact undo.

Every step looks before it acts, so a retried or replayed activity changes nothing twice, and every
undo restores the prior state captured during detection & analysis.
"""

from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import (
    NOT_FOUND,
    InAccount,
    aws_activity,
    client,
    error_code,
    heartbeat,
    side_by_side,
    tag_pairs,
    typed_aws_errors,
)
from activities.ec2_context import (
    DEPARTED_STATES,
    PRIOR_TAG,
    describe_instance,
    describe_live_instance,
    interface_groups,
    prior_record_tags,
)
from activities.forensic_egress import ForensicEgress, reconcile, resolve, tolerating
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.incident import StepResult
from irflow.models.settings import get_settings

ROLE_TAG = "irflow:role"  # marks irflow's own security groups (quarantine, untrack)
# Marks what irflow made and manages. Set at creation (TagSpecifications), so no moment exists when the untrack
# group is unmarked; its world-open rules are added after, by irflow's own principal, whose CloudTrail records the
# detector never evaluates (irflow.own_principals): opening it raises no "security group open to world" alert.
MANAGED_TAG = "irflow:managed"


# --- termination protection and shutdown behaviour ---


def _attributes(target: Ec2Target) -> tuple[bool, str]:
    ec2 = client("ec2", target.region, target.account_id)
    with typed_aws_errors(f"read attributes of {target.instance_id}"):
        termination = ec2.describe_instance_attribute(InstanceId=target.instance_id, Attribute="disableApiTermination")
        shutdown = ec2.describe_instance_attribute(
            InstanceId=target.instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )
    return bool(termination["DisableApiTermination"]["Value"]), shutdown["InstanceInitiatedShutdownBehavior"]["Value"]


def _set_attributes(target: Ec2Target, protect: bool, shutdown: str) -> dict:
    ec2 = client("ec2", target.region, target.account_id)
    current_protect, current_shutdown = _attributes(target)
    changed = {}
    with typed_aws_errors(f"set attributes of {target.instance_id}"):
        if current_protect != protect:
            ec2.modify_instance_attribute(InstanceId=target.instance_id, DisableApiTermination={"Value": protect})
            changed["disable_api_termination"] = protect
        if current_shutdown != shutdown:
            ec2.modify_instance_attribute(
                InstanceId=target.instance_id, InstanceInitiatedShutdownBehavior={"Value": shutdown}
            )
            changed["shutdown_behavior"] = shutdown
    return changed


@aws_activity("ec2:DescribeInstances", "ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute")
def protect_instance(step: Ec2StepInput) -> StepResult:
    """Termination protection on and shutdown-means-stop, so neither a person nor the attacker (shutdown
    from inside) can destroy the disks we are about to image."""
    describe_live_instance(step.target)
    changed = _set_attributes(step.target, protect=True, shutdown="stop")
    return StepResult(changed=bool(changed), detail=changed)


@aws_activity("ec2:DescribeInstances", "ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute")
def restore_instance_protection(step: Ec2StepInput) -> StepResult:
    describe_live_instance(step.target)
    changed = _set_attributes(step.target, step.prior.disable_api_termination, step.prior.shutdown_behavior)
    return StepResult(changed=bool(changed), detail=changed)


# --- network isolation ---


def find_isolation_groups(ec2, vpc_id: str, names: dict[str, str], adopt: bool = True) -> dict[str, dict]:
    """The VPC's isolation groups that exist, by role: found by their role tag (one call for every role), else by
    name (a group created by an earlier attempt that died before tagging, or by hand: adopted, tagged, unless
    `adopt` is False: a read-only caller)."""
    by_tag = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": f"tag:{ROLE_TAG}", "Values": list(names)}]
    )["SecurityGroups"]
    found: dict[str, dict] = {}
    for group in sorted(by_tag, key=lambda g: g["GroupId"]):
        found.setdefault(tag_pairs(group.get("Tags")).get(ROLE_TAG, ""), group)
    missing = {name: role for role, name in names.items() if role not in found}
    if not missing:
        return found
    by_name = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": list(missing)}]
    )["SecurityGroups"]
    for group in by_name:
        role = missing[group["GroupName"]]
        if adopt:
            ec2.create_tags(
                Resources=[group["GroupId"]],
                Tags=[{"Key": ROLE_TAG, "Value": role}, {"Key": MANAGED_TAG, "Value": "true"}],
            )
        found[role] = group
    return found


# One permission per address family: AWS refuses a whole request when any part of it already exists.
_ALL_TRAFFIC = (
    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
)


def _authorize_all_traffic(ec2, group_id: str) -> None:
    for call in (ec2.authorize_security_group_ingress, ec2.authorize_security_group_egress):
        for permission in _ALL_TRAFFIC:
            tolerating("InvalidPermission.Duplicate", call, group_id, permission)


# What isolation_groups needs: every activity that calls it declares these.
ISOLATION_GROUP_ACTIONS = (
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:CreateTags",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:DescribeManagedPrefixLists",  # the forensic egress's prefix lists (activities/forensic_egress.py)
)


class IsolationGroups(NamedTuple):
    untrack: str  # the allow-all group that turns tracked flows into untracked ones
    quarantine: str  # nothing in; out only HTTPS to `egress.applied`
    egress: ForensicEgress  # the quarantine group's forensic egress in this VPC


def resolve_egress(ec2, vpc_ids: list[str]) -> dict[str, ForensicEgress]:
    """IRFLOW_FORENSIC_EGRESS as each VPC can use it (activities/forensic_egress.py), resolved in one go."""
    with typed_aws_errors(f"resolve the forensic egress for {', '.join(vpc_ids)}"):
        return resolve(ec2, vpc_ids, get_settings().forensic_egress)


def _prepare_group(ec2, vpc_id: str, role: str, name: str, egress: ForensicEgress, group: dict | None) -> str:
    """One of the VPC's isolation groups (`group` when it exists), else created, tagged at creation; its rules
    reconciled either way."""
    with typed_aws_errors(f"prepare {role} security group in {vpc_id}"):
        if group is None:
            try:
                created = ec2.create_security_group(
                    GroupName=name,
                    Description=f"irflow {role} group: managed by irflow incident response, do not edit",
                    VpcId=vpc_id,
                    TagSpecifications=[
                        {
                            "ResourceType": "security-group",
                            "Tags": [
                                {"Key": ROLE_TAG, "Value": role},
                                {"Key": MANAGED_TAG, "Value": "true"},
                                {"Key": "Name", "Value": name},
                            ],
                        }
                    ],
                )
                group = {"GroupId": created["GroupId"]}
            except ClientError as error:
                if error_code(error) != "InvalidGroup.Duplicate":
                    raise
                group = find_isolation_groups(ec2, vpc_id, {role: name})[role]  # another incident made it meanwhile
        if role == "quarantine":
            # Its rules as they are (a group just made has AWS's default egress), to be reconciled.
            if "IpPermissionsEgress" not in group:
                group = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0]
            reconcile(ec2, group, egress.applied)
        else:
            _authorize_all_traffic(ec2, group["GroupId"])
        return group["GroupId"]


def _groups_by_vpc(target: InAccount, egress: dict[str, ForensicEgress]) -> dict[str, IsolationGroups]:
    """Every VPC's untrack and quarantine groups: found (one call per VPC), then each prepared, side by side."""
    settings = get_settings()
    ec2 = client("ec2", target.region, target.account_id)
    names = {"untrack": settings.untracking_group_name, "quarantine": settings.quarantine_group_name}
    vpcs = list(egress)
    with typed_aws_errors(f"find the isolation groups in {', '.join(vpcs)}"):
        lookups = side_by_side(*(partial(find_isolation_groups, ec2, vpc, names) for vpc in vpcs))
    found = dict(zip(vpcs, lookups, strict=True))
    wanted = [(vpc, role, name) for vpc in vpcs for role, name in names.items()]
    ids = side_by_side(
        *(
            partial(_prepare_group, ec2, vpc, role, name, egress[vpc], found[vpc].get(role))
            for vpc, role, name in wanted
        )
    )
    prepared = {(vpc, role): group_id for (vpc, role, _), group_id in zip(wanted, ids, strict=True)}
    return {vpc: IsolationGroups(prepared[vpc, "untrack"], prepared[vpc, "quarantine"], egress[vpc]) for vpc in vpcs}


def isolation_groups(target: InAccount, vpc_id: str, egress: ForensicEgress | None = None) -> IsolationGroups:
    """The VPC's untrack and quarantine groups (each created once, tagged) and the quarantine group's forensic
    egress: `egress` when the caller resolved it already (for several VPCs at once), else resolved here.

    Rules are reconciled on every call: a group someone loosened by hand is tightened again. The quarantine
    group allows nothing in, and out only HTTPS to the forensic egress (activities/forensic_egress.py).
    """
    if egress is None:
        egress = resolve_egress(client("ec2", target.region, target.account_id), [vpc_id])[vpc_id]
    return _groups_by_vpc(target, {vpc_id: egress})[vpc_id]


def _isolate_eni(ec2, eni_id: str, groups: IsolationGroups) -> None:
    """Through the untrack group into quarantine."""
    with typed_aws_errors(f"isolate {eni_id}"):
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[groups.untrack])
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[groups.quarantine])


def _groups_of(ec2, eni_ids: list[str]) -> dict[str, list[str]]:
    """Each interface's groups, sorted, in one DescribeNetworkInterfaces."""
    if not eni_ids:
        return {}
    found = ec2.describe_network_interfaces(NetworkInterfaceIds=eni_ids)["NetworkInterfaces"]
    return {eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni.get("Groups", [])) for eni in found}


def _eni_groups(ec2, eni_id: str) -> list[str]:
    return _groups_of(ec2, [eni_id])[eni_id]


def _record_prior_groups(ec2, step: Ec2StepInput, tags: dict[str, str]) -> None:
    """The interfaces' groups before isolation, on the instance, before any interface moves (a replay's first look
    reads them back: activities/ec2_context.py, PRIOR_TAG). Written once: a record already there is the older,
    truer one."""
    record = prior_record_tags(step.target.incident_id, step.prior.network_interfaces)
    if any(key.startswith(f"{PRIOR_TAG}{step.target.incident_id}#") for key in tags):
        return
    with typed_aws_errors(f"record the prior groups of {step.target.instance_id}"):
        ec2.create_tags(Resources=[step.target.instance_id], Tags=[{"Key": k, "Value": v} for k, v in record.items()])


@aws_activity(
    "ec2:DescribeInstances",
    *ISOLATION_GROUP_ACTIONS,
    "ec2:DescribeNetworkInterfaces",
    "ec2:ModifyNetworkInterfaceAttribute",
)
def isolate_network(step: Ec2StepInput) -> StepResult:
    """Put every ENI of the instance into the VPC's quarantine group, which allows nothing in and nothing out
    but HTTPS to the forensic egress (IRFLOW_FORENSIC_EGRESS, the SSM and S3 endpoints), if configured.

    Security groups are stateful: replacing a group does not cut connections that are already tracked,
    so an attacker's open reverse shell would survive a plain swap. Flows through a group that allows
    all traffic in both directions to 0.0.0.0/0 and ::/0 are not tracked, and untracked flows are judged
    packet by packet. Hence two steps per ENI: first the allow-all "untrack" group (turning the live
    sessions into untracked flows), then at once the empty quarantine group, which drops them.
    """
    instance = describe_live_instance(step.target)
    now = interface_groups(instance)  # every attached interface's groups
    ec2 = client("ec2", step.target.region, step.target.account_id)
    _, groups_by_vpc = side_by_side(
        lambda: _record_prior_groups(ec2, step, tag_pairs(instance.get("Tags"))),
        lambda: _groups_by_vpc(step.target, resolve_egress(ec2, step.prior.vpc_ids)),
    )
    enis = step.prior.network_interfaces
    heartbeat([eni.network_interface_id for eni in enis])
    detached = [eni.network_interface_id for eni in enis if eni.network_interface_id not in now]
    with typed_aws_errors(f"describe {', '.join(detached)}"):
        now |= _groups_of(ec2, detached)  # an interface detached since the first look (gone: NotFound)
    already = [
        e.network_interface_id for e in enis if now[e.network_interface_id] == [groups_by_vpc[e.vpc_id].quarantine]
    ]
    to_isolate = [e for e in enis if e.network_interface_id not in already]
    # Each interface is its own chain (untrack, then quarantine): all of them at once.
    side_by_side(*(partial(_isolate_eni, ec2, e.network_interface_id, groups_by_vpc[e.vpc_id]) for e in to_isolate))
    isolated = [e.network_interface_id for e in to_isolate]
    return StepResult(
        changed=bool(isolated),
        detail={
            "isolated": isolated,
            "already_isolated": already,
            "quarantine_groups": {vpc: groups.quarantine for vpc, groups in groups_by_vpc.items()},
            # What the quarantine group allows out (HTTPS), and what was configured but could not be applied.
            "forensic_egress": {vpc: groups.egress.applied for vpc, groups in groups_by_vpc.items()},
            "forensic_egress_missing": {
                vpc: groups.egress.missing for vpc, groups in groups_by_vpc.items() if groups.egress.missing
            },
        },
    )


@aws_activity(
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:DeleteTags",
)
def restore_network(step: Ec2StepInput) -> StepResult:
    """Every interface back in its own groups; then the record of them (`isolate_network`) goes."""
    instance = describe_live_instance(step.target)
    ec2 = client("ec2", step.target.region, step.target.account_id)
    restored, gone = [], []
    for eni in step.prior.network_interfaces:
        heartbeat(eni.network_interface_id)
        try:
            with typed_aws_errors(f"restore groups of {eni.network_interface_id}"):
                if _eni_groups(ec2, eni.network_interface_id) == sorted(eni.group_ids):
                    continue
                ec2.modify_network_interface_attribute(
                    NetworkInterfaceId=eni.network_interface_id, Groups=list(eni.group_ids)
                )
            restored.append(eni.network_interface_id)
        except ApplicationError as error:
            if error.type != NOT_FOUND:
                raise
            gone.append(eni.network_interface_id)  # a secondary ENI deleted meanwhile: nothing to restore
    record = [k for k in tag_pairs(instance.get("Tags")) if k.startswith(f"{PRIOR_TAG}{step.target.incident_id}#")]
    if record:
        with typed_aws_errors(f"remove the record of prior groups from {step.target.instance_id}"):
            ec2.delete_tags(Resources=[step.target.instance_id], Tags=[{"Key": k} for k in record])
    return StepResult(changed=bool(restored), detail={"restored": restored, "gone": gone})


# --- eradication ---


def _wait_for_state(target: Ec2Target, wanted: set[str], timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        state = describe_instance(target)["State"]["Name"]
        if state in wanted or time.monotonic() > deadline:
            return state
        heartbeat(state)
        time.sleep(2)


@aws_activity("ec2:DescribeInstances", "ec2:StopInstances")
def stop_instance(target: Ec2Target) -> StepResult:
    """Stop and keep the instance: its disks stay for deeper forensics, it can no longer run code."""
    state = describe_instance(target)["State"]["Name"]
    if state in ("stopped", "terminated"):
        return StepResult(changed=False, detail={"state": state})
    if state != "stopping":
        with typed_aws_errors(f"stop {target.instance_id}"):
            client("ec2", target.region, target.account_id).stop_instances(InstanceIds=[target.instance_id])
    return StepResult(changed=True, detail={"state": _wait_for_state(target, {"stopped", "terminated"})})


@aws_activity(
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceAttribute",
    "ec2:ModifyInstanceAttribute",
    "ec2:TerminateInstances",
)
def terminate_instance(target: Ec2Target) -> StepResult:
    """Terminate after approval. Snapshots taken during evidence capture outlive the instance."""
    state = describe_instance(target)["State"]["Name"]
    if state in DEPARTED_STATES:
        return StepResult(changed=False, detail={"state": state})
    _set_attributes(target, protect=False, shutdown="stop")
    with typed_aws_errors(f"terminate {target.instance_id}"):
        client("ec2", target.region, target.account_id).terminate_instances(InstanceIds=[target.instance_id])
    return StepResult(changed=True, detail={"state": _wait_for_state(target, set(DEPARTED_STATES))})
