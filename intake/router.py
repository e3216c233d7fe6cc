"""Routing: which playbook answers a finding, and which incident it belongs to. Pure, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from models.finding import Finding, FindingRejected

EC2_PLAYBOOK = "ec2-instance"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}([0-9a-f]{9})?$")


@dataclass(frozen=True)
class Route:
    playbook: str
    incident_key: str
    resource_id: str


def _key(kind: str, finding: Finding, resource_id: str) -> str:
    # Workflow ids are stored in clear text: only account, region, kind and the resource id go in.
    return _UNSAFE.sub("_", f"{kind}-{finding.account_id}-{finding.region}-{resource_id}")


def route(finding: Finding) -> Route:
    """Map a finding to its playbook and deterministic incident key, or reject it with a reason."""
    resource = finding.resource
    if resource.resource_type == "Instance":
        instance_id = resource.instance_id
        if not instance_id:
            raise FindingRejected(
                "no_instance_id", f"{finding.type} ({finding.id}) is about an instance but names no instance id"
            )
        if not _INSTANCE_ID.match(instance_id):
            raise FindingRejected("invalid_resource_id", f"{instance_id!r} is not an EC2 instance id")
        return Route(EC2_PLAYBOOK, _key("ec2", finding, instance_id), instance_id)
    raise FindingRejected(
        "no_playbook",
        f"no playbook for resource type {resource.resource_type!r} yet ({finding.type}); "
        "this version responds to EC2 instance findings",
    )


def incident_id(incident_key: str, opened_at: datetime) -> str:
    """One resource may have several incidents over time (one at a time): the id adds when it opened."""
    opened_at = opened_at.replace(tzinfo=UTC) if opened_at.tzinfo is None else opened_at.astimezone(UTC)
    return f"{incident_key}-{opened_at:%Y%m%dT%H%M%SZ}"
