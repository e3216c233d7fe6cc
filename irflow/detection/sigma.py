"""Sigma rules for CloudTrail, parsed with pySigma and evaluated natively on the event.

pySigma parses each YAML file (detection items with their modifiers already applied, the condition into a
tree); this module compiles that tree once, at load time, into plain Python closures: lower-cased literals,
precompiled regexes, frozenset look-ups for lists of plain values. Nothing about the rule is parsed per event.

Semantics follow the Sigma specification: string matching is case-insensitive (except `|cased` and `|re`),
a list of values is OR (AND with `|all`), a map is AND, a list of maps is OR, `null` matches a missing or
null field. Field names are CloudTrail JSON paths (`userIdentity.arn`); a path through a JSON array matches if
any element matches; a field holding an object or array is compared as its compact JSON text (how the rules'
authors see `requestParameters|contains: 'Suspended'`).

Index hints: a rule only gets `event_sources`/`event_names`/`identity_types` when every way its condition can be
true requires one of a fixed set of exact eventSource/eventName/userIdentity.type values; the values are taken
as written in the rule, which assumes CloudTrail's canonical casing of those fields (it never varies in
practice).

Rules this evaluator cannot honour (aggregations, correlations, keyword searches, placeholders, fields that
are not CloudTrail's, another logsource) are returned as `Unsupported` with the reason, never dropped.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from irflow.detection.rules import Event, Rule, Unsupported
from irflow.models.finding import Severity

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

LEVELS = {
    "informational": Severity.INFORMATIONAL,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}

# ATT&CK tactic tag → GuardDuty threat purpose, in priority order (the first tactic the rule carries wins).
TACTICS = (
    ("initial-access", "InitialAccess"),
    ("persistence", "Persistence"),
    ("privilege-escalation", "PrivilegeEscalation"),
    ("defense-evasion", "DefenseEvasion"),
    ("defense-impairment", "DefenseEvasion"),
    ("stealth", "DefenseEvasion"),
    ("credential-access", "CredentialAccess"),
    ("discovery", "Discovery"),
    ("exfiltration", "Exfiltration"),
    ("impact", "Impact"),
    ("execution", "Execution"),
)


class UnsupportedRule(Exception):
    """The rule uses something this evaluator does not honour; the message is the reason."""


@dataclass
class SigmaDetectionRule(Rule):
    """A Sigma rule compiled to a predicate. `author` is kept for the DRL-1.1 attribution."""

    author: str = ""
    level: str = ""
    path: str = ""
    predicate: Predicate | None = None

    def matches(self, event: Event) -> bool:
        assert self.predicate is not None
        return self.predicate(event)

    def indexed_test(self) -> Predicate | None:
        return self.predicate  # the compiled condition checks every field itself


# ---------------------------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    """A scalar or structure as the text a Sigma string is compared with."""
    if value.__class__ is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=False)
    return str(value)


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


def _string_test(value: SigmaString) -> Callable[[Any], bool]:
    """A Sigma string (possibly with `*`/`?` wildcards) → a test on one event value."""
    if value.contains_placeholder():
        raise UnsupportedRule(f"placeholder value {value} (|expand) needs deployment-specific lists")
    cased = isinstance(value, SigmaCasedString)
    parts = value.s
    plain = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if isinstance(p, SpecialChars)]
    if any(isinstance(p, Placeholder) for p in parts):
        raise UnsupportedRule(f"placeholder value {value}")

    def norm(s: str) -> str:
        return s if cased else s.lower()

    if not specials:
        literal = norm("".join(plain))
        if cased:
            return lambda v: _text(v) == literal
        return lambda v: (v.lower() if v.__class__ is str else _text(v).lower()) == literal
    if all(p is SpecialChars.WILDCARD_MULTI for p in specials):
        if all(p is SpecialChars.WILDCARD_MULTI for p in parts):  # `*`: any value at all
            return lambda v: True
        # Common shapes without a regex: *x*, x*, *x
        n = len(parts)
        if n == 3 and parts[0] is parts[2] is SpecialChars.WILDCARD_MULTI and isinstance(parts[1], str):
            needle = norm(parts[1])
            return (lambda v: needle in _text(v)) if cased else (lambda v: needle in _text(v).lower())
        if n == 2 and isinstance(parts[0], str):
            prefix = norm(parts[0])
            return (lambda v: _text(v).startswith(prefix)) if cased else (lambda v: _text(v).lower().startswith(prefix))
        if n == 2 and isinstance(parts[1], str):
            suffix = norm(parts[1])
            return (lambda v: _text(v).endswith(suffix)) if cased else (lambda v: _text(v).lower().endswith(suffix))
    pattern = "".join(
        re.escape(p) if isinstance(p, str) else (".*" if p is SpecialChars.WILDCARD_MULTI else ".") for p in parts
    )
    compiled = re.compile(pattern, re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    return lambda v: compiled.fullmatch(_text(v)) is not None


def _regex_test(value: SigmaRegularExpression) -> Callable[[Any], bool]:
    flags = 0
    for flag in value.flags:
        flags |= {
            SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
            SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
            SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
        }[flag]
    pattern = value.regexp.to_plain()
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        raise UnsupportedRule(f"regular expression {value.regexp} does not compile in Python: {exc}") from exc
    literal = required_literal(pattern)
    if not literal:
        return lambda v: compiled.search(_text(v)) is not None
    if flags & re.IGNORECASE:
        literal = literal.lower()
        return lambda v: literal in (t := _text(v)).lower() and compiled.search(t) is not None
    # A regex that starts with `.+` is tried at every offset; a substring test first rules most values out.
    return lambda v: literal in (t := _text(v)) and compiled.search(t) is not None


_REGEX_META = frozenset(".^$*+?{}[]\\|()")


def required_literal(pattern: str) -> str:
    """The longest literal run every match of `pattern` must contain, for patterns made only of literal
    characters, escaped punctuation, `.` and the quantifiers `* + ?` (anything else: "", no prefilter)."""
    runs: list[str] = []
    run: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1].isalnum():
                return ""  # \d, \b, back-references...: not a literal
            atom, literal, i = pattern[i + 1], True, i + 2
        elif char == ".":
            atom, literal, i = char, False, i + 1
        elif char in "^$":
            i += 1
            runs.append("".join(run))
            run = []
            continue
        elif char in _REGEX_META:
            return ""  # classes, groups, alternation, counted repeats
        else:
            atom, literal, i = char, True, i + 1
        quantifier = pattern[i] if i < len(pattern) and pattern[i] in "*+?" else ""
        if quantifier:
            i += 1
            if i < len(pattern) and pattern[i] in "?+":  # lazy or possessive form
                i += 1
        if literal and quantifier in ("", "+"):
            run.append(atom)
        if not literal or quantifier:  # the run cannot continue past a wildcard or a repeat
            runs.append("".join(run))
            run = []
    runs.append("".join(run))
    return max(runs, key=len)


def _cidr_test(value: SigmaCIDRExpression) -> Callable[[Any], bool]:
    network = value.network

    def test(v: Any) -> bool:
        try:
            return ipaddress.ip_address(_text(v)) in network
        except ValueError:
            return False

    return test


def _number_test(value: SigmaNumber) -> Callable[[Any], bool]:
    number = value.number
    text = str(number).lower()

    def test(v: Any) -> bool:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v == number
        return _text(v).lower() == text

    return test


def _bool_test(value: SigmaBool) -> Callable[[Any], bool]:
    flag = value.boolean
    text = "true" if flag else "false"
    return lambda v: (v is flag) if isinstance(v, bool) else _text(v).lower() == text


_COMPARE = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
}


def _compare_test(value: SigmaCompareExpression) -> Callable[[Any], bool]:
    op = _COMPARE.get(value.op)
    if op is None:
        raise UnsupportedRule(f"comparison operator {value.op}")
    number = value.number.number

    def test(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if not isinstance(v, (int, float)):
            try:
                v = float(_text(v))
            except ValueError:
                return False
        return op(v, number)

    return test


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
            a, b = _text(a).lower(), _text(b).lower()
            if starts and ends:
                return b in a
            if starts:
                return a.startswith(b)
            if ends:
                return a.endswith(b)
            return a == b

        return ref
    if isinstance(value, SigmaExpansion):
        tests = [_value_test(v) for v in value.values]
        test = _any_value(lambda v: any(t(v) for t in tests))
    else:
        test = _any_value(_value_test(value))
    return lambda event: test(get(event))


def _value_test(value: Any) -> Callable[[Any], bool]:
    if isinstance(value, SigmaString):
        return _string_test(value)
    if isinstance(value, SigmaRegularExpression):
        return _regex_test(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_test(value)
    if isinstance(value, SigmaBool):
        return _bool_test(value)
    if isinstance(value, SigmaNumber):
        return _number_test(value)
    if isinstance(value, SigmaCompareExpression):
        return _compare_test(value)
    raise UnsupportedRule(f"value type {type(value).__name__} ({value})")


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


def _compile(node: Any) -> Predicate:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        raise UnsupportedRule(f"keyword search ({node.value}) without a field")
    if isinstance(node, ConditionNOT):
        inner = _compile(node.args[0])
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
            test = _any_value(lambda v: v in exact or _text(v).lower() in members)
            return lambda event: test(get(event))
        preds = [_compile(a) for a in args]
        if len(preds) == 1:
            return preds[0]
        if len(preds) == 2:
            p, q = preds
            return lambda event: p(event) or q(event)
        return lambda event: any(p(event) for p in preds)
    if isinstance(node, ConditionAND):
        args = [a for a in node.args if a is not None]
        preds = [_compile(a) for a in args]
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


def _required(node: Any, field: str) -> frozenset[str] | None:
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
        sets = [s for s in (_required(a, field) for a in node.args if a is not None) if s is not None]
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
            sub = _required(arg, field)
            if sub is None:
                return None
            result |= sub
        return frozenset(result)
    return None  # NOT, keywords: unconstrained


# ------------------------------------------------------------------------------------------- loading


def _finding_type(tags: list[str], rule_id: str) -> str:
    tactics = {t.lower().removeprefix("attack.").replace("_", "-") for t in tags if t.lower().startswith("attack.")}
    purpose = next((p for tactic, p in TACTICS if tactic in tactics), "UnauthorizedAccess")
    return f"{purpose}:IAMUser/SigmaRule.{''.join(rule_id.split('-')[:2])}"


def compile_rule(rule: SigmaRule, path: str = "") -> SigmaDetectionRule:
    """A parsed pySigma rule → a rule the engine can run. Raises UnsupportedRule with the reason."""
    logsource = rule.logsource
    if (logsource.product or "").lower() != "aws" or (logsource.service or "").lower() != "cloudtrail":
        raise UnsupportedRule(
            f"logsource product={logsource.product} service={logsource.service} category={logsource.category}"
            " is not aws/cloudtrail"
        )
    conditions = rule.detection.condition
    for text in conditions:
        if "|" in text:
            raise UnsupportedRule(f"aggregation in condition {text!r} (needs windowed state)")
        if re.search(r"\bnear\b", text):
            raise UnsupportedRule(f"'near' in condition {text!r}")
    trees = []
    for parsed in rule.detection.parsed_condition:
        try:
            trees.append(parsed.parse())
        except Exception as exc:  # pySigma raises several error types for conditions it cannot parse
            raise UnsupportedRule(f"condition {parsed.condition!r} does not parse: {exc}") from exc
    preds = [_compile(tree) for tree in trees]
    # Several conditions in one rule: any of them.
    predicate = preds[0] if len(preds) == 1 else lambda event: any(p(event) for p in preds)
    tree = trees[0] if len(trees) == 1 else ConditionOR(trees)
    rule_id = str(rule.id) if rule.id else Path(path).stem
    tags = [str(t) for t in rule.tags]
    level = rule.level.name.lower() if rule.level else "medium"
    author = rule.author or ""
    description = (rule.description or "").strip()
    description += f"\n\nSigma rule {rule_id} by {author or 'unknown'} (Detection Rule License 1.1)."
    return SigmaDetectionRule(
        rule_id=rule_id,
        title=rule.title,
        severity=LEVELS.get(level, Severity.MEDIUM),
        finding_type=_finding_type(tags, rule_id),
        event_sources=_required(tree, "eventSource") or frozenset(),
        event_names=_required(tree, "eventName") or frozenset(),
        identity_types=_required(tree, "userIdentity.type") or frozenset(),
        description=description.strip(),
        kind="sigma",
        references=tuple(rule.references or ()),
        tags=tuple(tags),
        author=author,
        level=level,
        path=path,
        predicate=predicate,
    )


def load_sigma_file(path: Path) -> tuple[list[SigmaDetectionRule], list[Unsupported]]:
    loaded: list[SigmaDetectionRule] = []
    unsupported: list[Unsupported] = []
    source = str(path)
    try:
        collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)
    except Exception as exc:  # unreadable YAML, or pySigma rejecting the document outright
        return [], [Unsupported(source, f"pySigma cannot parse the file: {exc}")]
    reported = {str(error) for error in collection.errors}
    for error in collection.errors:
        unsupported.append(Unsupported(source, f"pySigma: {error}"))
    for item in collection.rules:
        if not isinstance(item, SigmaRule):
            unsupported.append(Unsupported(source, f"{type(item).__name__} (correlation/filter) is not a rule"))
            continue
        if item.errors:
            fresh = [str(error) for error in item.errors if str(error) not in reported]
            if fresh or not reported:
                unsupported.append(Unsupported(source, f"pySigma: {fresh[0] if fresh else item.errors[0]}"))
            continue
        try:
            loaded.append(compile_rule(item, source))
        except UnsupportedRule as exc:
            unsupported.append(Unsupported(source, str(exc)))
        except Exception as exc:  # never crash the loader on one rule
            unsupported.append(Unsupported(source, f"{type(exc).__name__}: {exc}"))
    return loaded, unsupported


def iter_rule_files(directory: Path) -> Iterator[Path]:
    yield from sorted(p for p in Path(directory).rglob("*.yml") if p.is_file())


def load_sigma_rules(directory: Path | str) -> tuple[list[Rule], list[Unsupported]]:
    """Every `*.yml` under `directory` (recursively): the rules that load, and the others with the reason."""
    rules: list[Rule] = []
    unsupported: list[Unsupported] = []
    for path in iter_rule_files(Path(directory)):
        loaded, rejected = load_sigma_file(path)
        rules.extend(loaded)
        unsupported.extend(rejected)
    return rules, unsupported
