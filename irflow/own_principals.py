"""irflow's own principals: who irflow acts as, so that its own actions neither raise alerts nor get contained.

irflow acts as the worker's identity in the security account, as the responder role (IRFLOW_MEMBER_ROLE_NAME)
in every account, and the listener reads as its own identity. When irflow undoes a containment it calls the same
APIs an attacker would (PutBucketPolicy, DeletePublicAccessBlock, AuthorizeSecurityGroupIngress on its untrack
group): a detection rule seeing those calls must not open an incident, or a rejected incident would re-open itself
forever. The same patterns protect irflow's own roles from being contained by irflow.

Patterns are ARN globs (`fnmatch`, case-sensitive; `*` also crosses `/`). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Protocol

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>[^:]*):assumed-role/(?P<role>[^/]+)/.+$")


class _Settings(Protocol):
    aws_partition: str
    member_role_name: str
    own_principals: list[str]


def member_role_patterns(partition: str, member_role_name: str) -> list[str]:
    """The responder role in any account: the role itself and every session of it."""
    return [
        f"arn:{partition}:iam::*:role/{member_role_name}",
        f"arn:{partition}:iam::*:role/*/{member_role_name}",  # the same name under a path
        f"arn:{partition}:sts::*:assumed-role/{member_role_name}/*",
    ]


def arn_patterns(arn: str) -> list[str]:
    """An ARN irflow found itself acting as (sts:GetCallerIdentity), with what else names the same principal:
    an assumed-role session ARN also yields its role (with or without a path) and every session of it."""
    if not arn:
        return []
    match = _ASSUMED_ROLE.match(arn)
    if not match:
        return [arn]
    partition, account, role = match.group("partition", "account", "role")
    return [
        arn,
        f"arn:{partition}:sts::{account}:assumed-role/{role}/*",
        f"arn:{partition}:iam::{account}:role/{role}",
        f"arn:{partition}:iam::{account}:role/*/{role}",
    ]


def own_principal_patterns(settings: _Settings, *found_arns: str) -> list[str]:
    """Every ARN glob that is irflow: the member role in any account, IRFLOW_OWN_PRINCIPALS, and the ARNs
    found at start (the process's own identity), each with its role and sessions. In order, without repeats."""
    patterns = [
        *member_role_patterns(settings.aws_partition, settings.member_role_name),
        *settings.own_principals,
        *(pattern for arn in found_arns for pattern in arn_patterns(arn)),
    ]
    return list(dict.fromkeys(p for p in patterns if p))


def is_own_principal(arn: str | None, patterns: Iterable[str]) -> bool:
    """True when `arn` matches one of `patterns` (from own_principal_patterns). No ARN is nobody's."""
    return bool(arn) and any(fnmatchcase(arn, pattern) for pattern in patterns)  # type: ignore[arg-type]


def caller_arns(record: Mapping[str, Any]) -> list[str]:
    """The ARNs a CloudTrail record names for its caller: `userIdentity.arn` and, for a role session, the
    role that issued it (`userIdentity.sessionContext.sessionIssuer.arn`)."""
    identity = record.get("userIdentity")
    if not isinstance(identity, Mapping):
        return []
    found = [identity.get("arn")]
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
    if isinstance(issuer, Mapping):
        found.append(issuer.get("arn"))
    return [arn for arn in found if isinstance(arn, str) and arn]


def caller_arn(record: Mapping[str, Any]) -> str | None:
    """Who made a CloudTrail record's call, in one word: its caller's ARN, else the AWS service that made it on
    someone's behalf (`userIdentity.invokedBy`); None when the record names neither."""
    arns = caller_arns(record)
    identity = record.get("userIdentity")
    service = identity.get("invokedBy") if isinstance(identity, Mapping) else None
    return arns[0] if arns else service if isinstance(service, str) and service else None


def made_by_own_principal(record: Mapping[str, Any], patterns: Iterable[str]) -> bool:
    """True when a CloudTrail record's caller (or the role behind its session) is one of irflow's own."""
    patterns = list(patterns)
    return bool(patterns) and any(is_own_principal(arn, patterns) for arn in caller_arns(record))
