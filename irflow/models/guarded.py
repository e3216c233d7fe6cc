"""What a contained incident guards, as the `IrflowGuarded` search attribute lists it.

An incident that has contained a resource publishes a handle for everything an attacker (or a hurried admin)
could use to undo the containment: the instance and its interfaces, the quarantine groups, the user and their
keys, the bucket, the function, the database. A CloudTrail record of a change to one of them, by a principal
other than irflow's, is routed to every running incident that guards it (`irflow.intake`), which re-checks.

A handle is `<account>:<kind>:<value>`. Search attributes are never encrypted: an identity (a user, a role,
an access key) appears only hashed (`irflow.visibility.identity_hash`), like everywhere else irflow shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from irflow.visibility import identity_hash

INSTANCE = "instance"
NETWORK_INTERFACE = "eni"
SECURITY_GROUP = "security-group"
ACCESS_KEY = "access-key"
IAM_USER = "iam-user"
IAM_ROLE = "iam-role"
BUCKET = "bucket"
FUNCTION = "function"
DB_INSTANCE = "db-instance"

KINDS = (INSTANCE, NETWORK_INTERFACE, SECURITY_GROUP, ACCESS_KEY, IAM_USER, IAM_ROLE, BUCKET, FUNCTION, DB_INSTANCE)
PERSONAL_KINDS = frozenset({ACCESS_KEY, IAM_USER, IAM_ROLE})


def guard_handle(account_id: str, kind: str, value: str) -> str:
    """One guarded thing's handle: the same from the incident's side and from a CloudTrail record's."""
    if kind not in KINDS:
        raise ValueError(f"unknown guarded kind {kind!r}")
    shown = identity_hash(value) if kind in PERSONAL_KINDS else value
    return f"{account_id}:{kind}:{shown}"


def guard_handles(account_id: str, kind: str, values: Iterable[str]) -> list[str]:
    """Handles for several things of one kind, in order, without repeats or empty values."""
    return list(dict.fromkeys(guard_handle(account_id, kind, v) for v in values if v))
