"""One Sigma value, its modifiers applied by pySigma, compiled into a test on one value taken from a CloudTrail record.

Each test is built once, at load time: lower-cased literals, precompiled regexes (behind a substring test when
the regex requires a literal), parsed networks. Nothing about the value is parsed per event.

Semantics follow the Sigma specification: string matching is case-insensitive (except `|cased` and `|re`); a
value holding an object or array is compared as its compact JSON text (how the rules' authors see
`requestParameters|contains: 'Suspended'`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)


class UnsupportedRule(Exception):
    """The rule uses something this evaluator does not honour; the message is the reason."""


def as_text(value: Any) -> str:
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
            return lambda v: as_text(v) == literal
        return lambda v: (v.lower() if v.__class__ is str else as_text(v).lower()) == literal
    if all(p is SpecialChars.WILDCARD_MULTI for p in specials):
        if all(p is SpecialChars.WILDCARD_MULTI for p in parts):  # `*`: any value at all
            return lambda v: True
        # Common shapes without a regex: *x*, x*, *x
        n = len(parts)
        if n == 3 and parts[0] is parts[2] is SpecialChars.WILDCARD_MULTI and isinstance(parts[1], str):
            needle = norm(parts[1])
            return (lambda v: needle in as_text(v)) if cased else (lambda v: needle in as_text(v).lower())
        if n == 2 and isinstance(parts[0], str):
            prefix = norm(parts[0])
            return (
                (lambda v: as_text(v).startswith(prefix))
                if cased
                else (lambda v: as_text(v).lower().startswith(prefix))
            )
        if n == 2 and isinstance(parts[1], str):
            suffix = norm(parts[1])
            return (lambda v: as_text(v).endswith(suffix)) if cased else (lambda v: as_text(v).lower().endswith(suffix))
    pattern = "".join(
        re.escape(p) if isinstance(p, str) else (".*" if p is SpecialChars.WILDCARD_MULTI else ".") for p in parts
    )
    compiled = re.compile(pattern, re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    return lambda v: compiled.fullmatch(as_text(v)) is not None


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
        return lambda v: compiled.search(as_text(v)) is not None
    if flags & re.IGNORECASE:
        literal = literal.lower()
        return lambda v: literal in (t := as_text(v)).lower() and compiled.search(t) is not None
    # A regex that starts with `.+` is tried at every offset; a substring test first rules most values out.
    return lambda v: literal in (t := as_text(v)) and compiled.search(t) is not None


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
            return ipaddress.ip_address(as_text(v)) in network
        except ValueError:
            return False

    return test


def _number_test(value: SigmaNumber) -> Callable[[Any], bool]:
    number = value.number
    text = str(number).lower()

    def test(v: Any) -> bool:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v == number
        return as_text(v).lower() == text

    return test


def _bool_test(value: SigmaBool) -> Callable[[Any], bool]:
    flag = value.boolean
    text = "true" if flag else "false"
    return lambda v: (v is flag) if isinstance(v, bool) else as_text(v).lower() == text


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
                v = float(as_text(v))
            except ValueError:
                return False
        return op(v, number)

    return test


def value_test(value: Any) -> Callable[[Any], bool]:
    """A value as pySigma gives it → its test. Raises UnsupportedRule for the types it does not know."""
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
