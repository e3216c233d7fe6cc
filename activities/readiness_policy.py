"""Whether IAM policy documents allow an action on a resource, read the way IAM reads them, for where the policy
simulator is not available (moto, a worker without iam:SimulatePrincipalPolicy). Pure.

The grammar is small: Effect, Action/NotAction and Resource/NotResource with `*` and `?` globs (actions compared
without case, resources with it), an explicit Deny winning over any Allow. What this comparison cannot know, it
says: a statement with a Condition is not evaluated (an Allow under a condition counts as allowing, and is
reported as conditional; a Deny under a condition does not count as denying, and is reported too), and neither
service control policies nor resource policies are seen. A permissions boundary is applied when given.

The resource `*` asks about any resource at all (an action irflow uses on whatever a finding names). A statement
naming some resources (a Resource other than `*`, or a NotResource) covers some of them: an Allow of that kind
allows the action on some resources only, and a Deny of that kind denies it on some (`partly_denied`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple


class Decision(NamedTuple):
    allowed: bool  # an Allow covers the action (perhaps under a condition, or on some resources) and no Deny does
    denied: bool = False  # an unconditional Deny matched
    conditional: bool = False  # allowed only through statements with a Condition, or a conditional Deny matched
    some_resources: bool = False  # asked about `*`: allowed only by statements naming some resources
    partly_denied: bool = False  # asked about `*`: an unconditional Deny names some resources


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in as_list(document.get("Statement", [])) if isinstance(s, dict)]


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(text, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(globs: Any, value: str, ignore_case: bool) -> bool:
    return any(_pattern(str(glob), ignore_case).fullmatch(value) for glob in as_list(globs))


def applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    """The statement names the action and the resource (conditions aside)."""
    if "Action" in statement and not matches(statement["Action"], action, True):
        return False
    if "NotAction" in statement and matches(statement["NotAction"], action, True):
        return False
    if "Resource" in statement and not matches(statement["Resource"], resource, False):
        return False
    if "NotResource" in statement and matches(statement["NotResource"], resource, False):
        return False
    return "Action" in statement or "NotAction" in statement


def extent(statement: dict[str, Any], action: str, resource: str) -> str | None:
    """How much of `resource` the statement covers for the action: "all", "some" (asked about `*`, the statement
    names some resources) or None."""
    if resource != "*":
        return "all" if applies(statement, action, resource) else None
    if not applies({k: v for k, v in statement.items() if k not in ("Resource", "NotResource")}, action, resource):
        return None
    if "NotResource" in statement or ("Resource" in statement and "*" not in as_list(statement["Resource"])):
        return "some"
    return "all"


def decide(documents: list[dict[str, Any]], action: str, resource: str) -> Decision:
    """One action on one resource under the identity policies `documents`."""
    everywhere = somewhere = conditional_allow = conditional_deny = partly_denied = False
    for statement in (s for document in documents for s in statements(document)):
        covered = extent(statement, action, resource)
        if covered is None:
            continue
        if statement.get("Effect") == "Deny":
            if statement.get("Condition"):
                conditional_deny = True
            elif covered == "all":
                return Decision(allowed=False, denied=True)
            else:
                partly_denied = True
        elif statement.get("Effect") == "Allow":
            if statement.get("Condition"):
                conditional_allow = True
            elif covered == "all":
                everywhere = True
            else:
                somewhere = True
    unconditional = everywhere or somewhere
    return Decision(
        allowed=(unconditional or conditional_allow) and not partly_denied,
        conditional=conditional_deny or (conditional_allow and not unconditional),
        some_resources=somewhere and not everywhere,
        partly_denied=partly_denied,
    )


def decide_all(
    documents: list[dict[str, Any]], action: str, resources: list[str], boundary: list[dict[str, Any]] | None = None
) -> Decision:
    """The action on every one of `resources` (each must be allowed), within the permissions boundary if any."""
    decisions = [decide(documents, action, r) for r in resources]
    if boundary:
        decisions += [decide(boundary, action, r) for r in resources]
    return Decision(
        allowed=all(d.allowed for d in decisions),
        denied=any(d.denied for d in decisions),
        conditional=any(d.conditional for d in decisions),
        some_resources=any(d.some_resources for d in decisions),
        partly_denied=any(d.partly_denied for d in decisions),
    )
