"""The quarantine group's rules: nothing in, and out only HTTPS to the endpoints forensics needs.

An isolated instance is still imaged through SSM, whose agent must reach the VPC interface endpoints (ssm,
ssmmessages, ec2messages) and S3. IRFLOW_FORENSIC_EGRESS names those endpoints' security groups (sg-…) and
prefix lists (pl-…, the S3 gateway endpoint's); the quarantine group allows TCP 443 to each that is usable in
its VPC and nothing else. Without the setting it allows nothing at all.

Rules are compared one target at a time (an "atom": protocol, ports, one target), since AWS merges the targets
that share a protocol and ports into one permission. Each atom is revoked or authorized on its own, so a rule
that an earlier or a concurrent call already changed is no error.
"""

from __future__ import annotations

from typing import NamedTuple

from botocore.exceptions import ClientError

from activities.aws import error_code

HTTPS = ("tcp", 443, 443)
# Each kind of target a permission holds, with the key of its id.
_TARGETS = {
    "IpRanges": "CidrIp",
    "Ipv6Ranges": "CidrIpv6",
    "PrefixListIds": "PrefixListId",
    "UserIdGroupPairs": "GroupId",
}
# What names a referenced group when revoking it (its description does not).
_PAIR_KEYS = ("GroupId", "UserId", "VpcId", "VpcPeeringConnectionId")

Atom = tuple[str, int | None, int | None, str, str]  # protocol, from port, to port, kind of target, its id


class ForensicEgress(NamedTuple):
    applied: list[str]  # the configured ids the VPC's quarantine group allows HTTPS to
    missing: list[str]  # configured but unusable there: a group of another VPC, a prefix list that does not exist


def resolve(ec2, vpc_ids: list[str], configured: list[str]) -> dict[str, ForensicEgress]:
    """For each VPC, the configured ids split into those usable there and the others: a rule can reference a
    security group of its own VPC only, and a prefix list must exist in the region (one call for each kind, however
    many VPCs; none when nothing is configured)."""
    wanted = list(dict.fromkeys(configured))
    groups = [i for i in wanted if i.startswith("sg-")]
    lists = [i for i in wanted if i.startswith("pl-")]
    vpc_of: dict[str, str] = {}
    if groups and vpc_ids:  # filters, not GroupIds: an unknown id is left out rather than failing the call
        vpc_of = {
            g["GroupId"]: g["VpcId"]
            for g in ec2.describe_security_groups(
                Filters=[{"Name": "vpc-id", "Values": list(vpc_ids)}, {"Name": "group-id", "Values": groups}]
            )["SecurityGroups"]
        }
    regional = set()
    if lists and vpc_ids:  # AWS-managed lists (the S3 gateway endpoint's) and the account's own alike
        regional = {
            p["PrefixListId"]
            for p in ec2.describe_managed_prefix_lists(Filters=[{"Name": "prefix-list-id", "Values": lists}])[
                "PrefixLists"
            ]
        }
    egress = {}
    for vpc_id in vpc_ids:
        usable = [i for i in wanted if i in regional or vpc_of.get(i) == vpc_id]
        egress[vpc_id] = ForensicEgress(usable, [i for i in wanted if i not in usable])
    return egress


def atoms(permissions: list[dict]) -> dict[Atom, dict]:
    """Each atom of the permissions, with the one-target permission that revokes or authorizes it."""
    found = {}
    for permission in permissions:
        protocol = permission["IpProtocol"]
        ports = {k: permission[k] for k in ("FromPort", "ToPort") if k in permission}
        for kind, id_key in _TARGETS.items():
            for item in permission.get(kind) or []:
                keys = _PAIR_KEYS if kind == "UserIdGroupPairs" else (id_key,)
                target = {k: item[k] for k in keys if k in item}
                atom = (protocol, ports.get("FromPort"), ports.get("ToPort"), kind, target[id_key])
                found[atom] = {"IpProtocol": protocol, **ports, kind: [target]}
    return found


def egress_atoms(applied: list[str]) -> dict[Atom, dict]:
    """The quarantine group's whole egress: HTTPS to each applied group and prefix list."""
    protocol, from_port, to_port = HTTPS
    permissions = [
        {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port, "UserIdGroupPairs": [{"GroupId": i}]}
        if i.startswith("sg-")
        else {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port, "PrefixListIds": [{"PrefixListId": i}]}
        for i in applied
    ]
    return atoms(permissions)


def tolerating(code: str, call, group_id: str, permission: dict) -> None:
    """Authorize or revoke one permission of a group, the error `code` (it is there already, or gone) being none."""
    try:
        call(GroupId=group_id, IpPermissions=[permission])
    except ClientError as error:
        if error_code(error) != code:
            raise


def unwanted(group: dict, applied: list[str]) -> tuple[dict[Atom, dict], dict[Atom, dict]]:
    """What the quarantine group allows beyond isolation's rules: (every ingress atom, every egress atom but HTTPS
    to `applied`), each with the permission that revokes it. Pure: `reconcile` revokes them, a check reports them."""
    wanted = egress_atoms(applied)
    egress = atoms(group.get("IpPermissionsEgress", []))
    return atoms(group.get("IpPermissions", [])), {a: p for a, p in egress.items() if a not in wanted}


def reconcile(ec2, group: dict, applied: list[str]) -> None:
    """Make the quarantine group's rules exactly: no ingress, HTTPS egress to `applied`. Unwanted rules go
    first, so the group never allows more than wanted."""
    group_id = group["GroupId"]
    ingress, extra_egress = unwanted(group, applied)
    for permission in ingress.values():
        tolerating("InvalidPermission.NotFound", ec2.revoke_security_group_ingress, group_id, permission)
    for permission in extra_egress.values():
        tolerating("InvalidPermission.NotFound", ec2.revoke_security_group_egress, group_id, permission)
    egress = atoms(group.get("IpPermissionsEgress", []))
    for atom, permission in egress_atoms(applied).items():
        if atom not in egress:
            tolerating("InvalidPermission.Duplicate", ec2.authorize_security_group_egress, group_id, permission)
