"""What every postcondition check shares: how a verdict is written down, the quarantine group as it should be,
and the deny-older-sessions policy as it should be.

Checks only read. A resource that no longer exists is not drift: there is nothing to re-apply the step to (a
terminated instance carries no traffic, a deleted key signs nothing); it is listed in `Postcondition.gone`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import NOT_FOUND, error_code, typed_aws_errors
from activities.ec2_containment import find_isolation_groups, resolve_egress
from activities.forensic_egress import Atom, unwanted
from activities.iam import revocation_cutoff, revocation_policy, revocation_policy_name
from irflow.models.postconditions import Postcondition
from irflow.models.settings import get_settings

# What the quarantine group check reads (isolation's own helpers would also create and tighten: they write).
QUARANTINE_READ_ACTIONS = ("ec2:DescribeSecurityGroups", "ec2:DescribeManagedPrefixLists")
READ_ONLY_PREFIXES = ("Describe", "Get", "List")


@dataclass
class Verdict:
    """A check's findings as it reads: each drift in words with the resources CloudTrail knows it by, each
    vanished resource, and notes (why a step had nothing to do)."""

    step: str
    drift: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def drifted(self, what: str, *resources: str | None) -> None:
        self.drift.append(what)
        self.resources.extend(r for r in resources if r and r not in self.resources)

    def vanished(self, what: str, resource: str) -> None:
        self.notes.append(what)
        if resource not in self.gone:
            self.gone.append(resource)

    def note(self, what: str) -> None:
        self.notes.append(what)

    def result(self) -> Postcondition:
        """Holds when nothing drifted; `found` says what drifted, else what was noted (possibly nothing)."""
        return Postcondition(
            step=self.step,
            holds=not self.drift,
            found="; ".join(self.drift or self.notes),
            resources=list(self.resources),
            gone=list(self.gone),
        )


def is_gone(error: ApplicationError) -> bool:
    """A typed AWS error saying the resource is not there (activities.aws.typed_aws_errors)."""
    return error.type == NOT_FOUND


def check_read_only(actions: tuple[str, ...]) -> tuple[str, ...]:
    """The actions, refused at import when one could change anything: a check must never write."""
    writes = [a for a in actions if not a.split(":", 1)[-1].startswith(READ_ONLY_PREFIXES)]
    if writes:
        raise ValueError(f"a postcondition check only reads; not {writes}")
    return actions


# --- the quarantine group ---


def quarantine_group(ec2, vpc_id: str) -> dict | None:
    """The VPC's quarantine group as isolation finds it (by its role tag, else by name), read only: isolation
    would tag a group found by name (`adopt`)."""
    name = get_settings().quarantine_group_name
    with typed_aws_errors(f"find the quarantine group of {vpc_id}"):
        return find_isolation_groups(ec2, vpc_id, {"quarantine": name}, adopt=False).get("quarantine")


def _shown(atom: Atom, direction: str) -> str:
    protocol, from_port, to_port, _, target = atom
    if protocol == "-1":
        what = "all traffic"
    elif from_port is None or from_port == to_port:
        what = f"{protocol} {from_port}" if from_port is not None else protocol
    else:
        what = f"{protocol} {from_port}-{to_port}"
    return f"{what} {direction} {target}"


def quarantine_rule_drift(ec2, group: dict, vpc_id: str) -> list[str]:
    """What the quarantine group allows beyond isolation's rules (forensic_egress.reconcile): any ingress at
    all, any egress but HTTPS to the forensic egress usable in its VPC. Egress missing from what is configured
    loosens nothing and is not drift."""
    applied = resolve_egress(ec2, [vpc_id])[vpc_id].applied
    ingress, egress = unwanted(group, applied)
    inbound, outbound = sorted(ingress, key=str), sorted(egress, key=str)
    problems = []
    group_id = group["GroupId"]
    if inbound:
        problems.append(
            f"quarantine group {group_id} allows in {', '.join(_shown(a, 'from') for a in inbound)}: it must allow "
            "nothing in"
        )
    if outbound:
        allowed = f"HTTPS to {', '.join(applied)}" if applied else "nothing"
        problems.append(
            f"quarantine group {group_id} allows out {', '.join(_shown(a, 'to') for a in outbound)}: it must allow "
            f"{allowed} out"
        )
    return problems


def check_quarantine_group(verdict: Verdict, ec2, vpc_id: str) -> dict | None:
    """The VPC's quarantine group, its loosened rules written down as drift (a VPC without one: drift too)."""
    group = quarantine_group(ec2, vpc_id)
    if group is None:
        verdict.drifted(f"VPC {vpc_id} has no quarantine group", vpc_id)
        return None
    for problem in quarantine_rule_drift(ec2, group, vpc_id):
        verdict.drifted(problem, group["GroupId"])
    return group


# --- the deny-older-sessions policy (activities.iam) ---


def _document(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_revocation(
    verdict: Verdict,
    who: str,
    name: str,
    read_policy: Callable[[str], Any],
    read_principal: Callable[[], Any],
    incident_id: str,
    issued_before: datetime | None,
) -> None:
    """The incident's revocation policy on a role or user (`who`, e.g. "role app"), exactly as the step wrote
    it. `read_policy(policy_name)` reads the inline policy's document; `read_principal()` tells a principal
    that is gone (NoSuchEntity) from a policy that is."""
    policy = revocation_policy_name(incident_id)
    with typed_aws_errors(f"read the session revocation of {who}"):
        try:
            document = _document(read_policy(policy))
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
            try:
                read_principal()
            except ClientError as missing:
                if error_code(missing) != "NoSuchEntity":
                    raise
                verdict.vanished(f"{who} no longer exists: its sessions are worthless", name)
                return
            cutoff = f" issued before {revocation_cutoff(issued_before)}" if issued_before else ""
            verdict.drifted(f"{who} lacks the revocation policy {policy}: its sessions{cutoff} work again", name)
            return
    if issued_before is not None and document != revocation_policy(issued_before):
        verdict.drifted(
            f"{who}'s revocation policy {policy} is not the one containment wrote (deny all to sessions issued "
            f"before {revocation_cutoff(issued_before)}): {json.dumps(document, sort_keys=True)}",
            name,
        )


def check_role_revocation(
    verdict: Verdict, iam, role: str, incident_id: str, issued_before: datetime | None, who: str = ""
) -> None:
    """`check_revocation` on a role (an instance's, a function's, or the role an incident is about)."""
    check_revocation(
        verdict,
        who or f"role {role}",
        role,
        lambda policy: iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"],
        lambda: iam.get_role(RoleName=role),
        incident_id,
        issued_before,
    )
