"""A Sigma rule's condition tree, as pySigma parses it, compiled into one predicate on a CloudTrail record, and
the exact values it requires of the fields that index rules.

pySigma has already turned the detection into ANDs and ORs (a list of values is OR, AND with `|all`; a map is
AND; a list of maps is OR); this module compiles that tree once, into plain Python closures, with frozenset
look-ups for lists of plain values. Field names are CloudTrail JSON paths (`userIdentity.arn`); a path through a
JSON array matches if any element matches; `null` matches a missing or null field.

Index hints: a rule only gets `event_sources`/`event_names`/`identity_types` when every way its condition can be
true requires one of a fixed set of exact eventSource/eventName/userIdentity.type values; the values are taken
as written in the rule, which assumes CloudTrail's canonical casing of those fields (it never varies in
practice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import SigmaCasedString, SigmaExists, SigmaExpansion, SigmaFieldReference, SigmaNull, SigmaString

from irflow.detection.rules import Event
from irflow.detection.sigma_values import UnsupportedRule, as_text, value_test

Predicate = Callable[[Event], bool]

# Top-level keys of a CloudTrail record (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html).
CLOUDTRAIL_FIELDS = frozenset(
    {
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "requestID",
        "eventID",
        "eventType",
        "apiVersion",
        "managementEvent",
        "readOnly",
        "resources",
        "recipientAccountId",
        "serviceEventDetails",
        "sharedEventID",
        "vpcEndpointId",
        "vpcEndpointAccountId",
        "eventCategory",
        "addendum",
        "sessionCredentialFromConsole",
        "edgeDeviceDetails",
        "tlsDetails",
        "insightDetails",
        "annotation",
    }
)

# ----------------------------------------------------------------------------------------- field paths


def _getter(path: str) -> Callable[[Event], Any]:
    """`a.b.c` → a function returning the value, or a list of values when the path crosses a JSON array."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        key = parts[0]
        return lambda event: event.get(key)

    def walk(value: Any, index: int) -> Any:
        for i in range(index, len(parts)):
            if isinstance(value, dict):
                value = value.get(parts[i])
            elif isinstance(value, list):
                found = []
                for item in value:
                    sub = walk(item, i)
                    if isinstance(sub, _Many):
                        found.extend(sub)
                    elif sub is not None:
                        found.append(sub)
                return _Many(found) if found else None
            else:
                return None
        return value

    def get(event: Event) -> Any:
        value = event
        for i, part in enumerate(parts):
            if value.__class__ is dict:
                value = value.get(part)
            elif isinstance(value, list):
                return walk(value, i)
            else:
                return None
        return value

    return get


class _Many(list):
    """Several values reached through JSON arrays; a match on any one is a match."""


def _any_value(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Lift a scalar test over arrays: a list matches if it matches as JSON text or any element matches."""

    def check(value: Any) -> bool:
        if value.__class__ is str:
            return test(value)
        if value is None:
            return False
        if isinstance(value, list):
            if not isinstance(value, _Many) and test(value):
                return True
            return any(check(item) for item in value)
        return test(value)

    return check


def _field_predicate(field: str, value: Any) -> Predicate:
    """One `field: value` leaf of the condition tree → a predicate on the event."""
    if field.split(".", 1)[0] not in CLOUDTRAIL_FIELDS:
        raise UnsupportedRule(f"field {field!r} is not a CloudTrail record field")
    get = _getter(field)
    if isinstance(value, SigmaNull):
        return lambda event: get(event) is None
    if isinstance(value, SigmaExists):
        want = value.exists
        return lambda event: (get(event) is not None) is want
    if isinstance(value, SigmaFieldReference):
        if value.field.split(".", 1)[0] not in CLOUDTRAIL_FIELDS:
            raise UnsupportedRule(f"field reference {value.field!r} is not a CloudTrail record field")
        other = _getter(value.field)
        starts, ends = value.starts_with, value.ends_with

        def ref(event: Event) -> bool:
            a, b = get(event), other(event)
            if a is None or b is None:
                return False
            a, b = as_text(a).lower(), as_text(b).lower()
            if starts and ends:
                return b in a
            if starts:
                return a.startswith(b)
            if ends:
                return a.endswith(b)
            return a == b

        return ref
    if isinstance(value, SigmaExpansion):
        tests = [value_test(v) for v in value.values]
        test = _any_value(lambda v: any(t(v) for t in tests))
    else:
        test = _any_value(value_test(value))
    return lambda event: test(get(event))


# ------------------------------------------------------------------------------------------ conditions


def _plain_values(args: list[Any]) -> tuple[str, list[str]] | None:
    """An OR of `field: plain string` leaves on the same field → (field, lower-cased values), else None."""
    field = None
    values = []
    for arg in args:
        if not (
            isinstance(arg, ConditionFieldEqualsValueExpression)
            and type(arg.value) is SigmaString
            and not arg.value.contains_special()
            and not arg.value.contains_placeholder()
        ):
            return None
        if field is None:
            field = arg.field
        elif arg.field != field:
            return None
        values.append(arg.value.to_plain().lower())
    return (field, values) if field is not None else None


def compile_condition(node: Any) -> Predicate:
    """The condition tree (or a node of it) → a predicate on the event. Raises UnsupportedRule with the reason."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        raise UnsupportedRule(f"keyword search ({node.value}) without a field")
    if isinstance(node, ConditionNOT):
        inner = compile_condition(node.args[0])
        return lambda event: not inner(event)
    if isinstance(node, ConditionOR):
        args = [a for a in node.args if a is not None]
        if not args:  # `1 of nothing`
            return lambda event: False
        same = _plain_values(args)
        if same is not None and len(args) > 1:  # eventName: [A, B, C] → one set look-up
            field, values = same
            if field.split(".", 1)[0] not in CLOUDTRAIL_FIELDS:
                raise UnsupportedRule(f"field {field!r} is not a CloudTrail record field")
            get = _getter(field)
            members = frozenset(values)
            exact = frozenset(a.value.to_plain() for a in args)
            test = _any_value(lambda v: v in exact or as_text(v).lower() in members)
            return lambda event: test(get(event))
        preds = [compile_condition(a) for a in args]
        if len(preds) == 1:
            return preds[0]
        if len(preds) == 2:
            p, q = preds
            return lambda event: p(event) or q(event)
        return lambda event: any(p(event) for p in preds)
    if isinstance(node, ConditionAND):
        args = [a for a in node.args if a is not None]
        preds = [compile_condition(a) for a in args]
        # Cheap exact tests (eventSource/eventName) first: they fail most often.
        preds = [p for _, p in sorted(enumerate(preds), key=lambda ip: _cost(args[ip[0]]))]
        if not preds:
            return lambda event: True
        if len(preds) == 1:
            return preds[0]
        if len(preds) == 2:
            p, q = preds
            return lambda event: p(event) and q(event)
        return lambda event: all(p(event) for p in preds)
    raise UnsupportedRule(f"condition element {type(node).__name__}")


def _cost(node: Any) -> int:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if node.field in ("eventName", "eventSource"):
            return 0
        return 1 if "." not in node.field else 2
    return 3


def required_values(node: Any, field: str) -> frozenset[str] | None:
    """The exact values `field` must have for `node` to be true, or None when not constrained (conservative)."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        value = node.value
        if (
            node.field == field
            and type(value) in (SigmaString, SigmaCasedString)
            and not value.contains_special()
            and not value.contains_placeholder()
        ):
            return frozenset({value.to_plain()})
        return None
    if isinstance(node, ConditionAND):
        sets = [s for s in (required_values(a, field) for a in node.args if a is not None) if s is not None]
        if not sets:
            return None
        result = frozenset.intersection(*sets)
        return result or None  # contradictory: never matches; leave it unindexed rather than special-case
    if isinstance(node, ConditionOR):
        args = [a for a in node.args if a is not None]
        if not args:
            return None
        result: set[str] = set()
        for arg in args:
            sub = required_values(arg, field)
            if sub is None:
                return None
            result |= sub
        return frozenset(result)
    return None  # NOT, keywords: unconstrained
