"""What the fuzz tests share: hypothesis settings that make a run reproducible and sized for CI, real documents
from the corpora to mutate, and strategies for what hostile or broken producers put in them (wrong types,
missing keys, huge and odd strings, nesting far deeper than any real finding).

Every fuzz test states one property: whatever comes in, the code under test ends in a parsed result or a typed
refusal with its reason, never another exception.
"""

from __future__ import annotations

import copy
import gzip
import json
from functools import cache
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from irflow.models.finding import MAX_JSON_DEPTH, FindingRejected
from tests.support import CORPORA


def fuzz(max_examples: int, shrink: bool = True):
    """Derandomized (the same cases on every run, so CI is reproducible), no example database and no patch
    files in the checkout, no deadline (the machines are shared and loaded). `shrink=False` for a test expected
    to fail: shrinking its failure would only cost time."""
    return settings(
        max_examples=max_examples,
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def _lines(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CORPORA / path).read_text().splitlines() if line.strip()]


def _spread(items: list[Any], count: int) -> list[Any]:
    """`count` items from all over `items` (the corpora are grouped by source): variety, kept small."""
    step = max(1, len(items) // count)
    return items[::step][:count]


@cache
def guardduty_records() -> tuple[dict[str, Any], ...]:
    """GuardDuty findings in the three shapes they arrive in: EventBridge events, bare camelCase findings and
    GetFindings' PascalCase."""
    lines = _lines("guardduty/findings.jsonl")
    by_shape: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_shape.setdefault(line["original_format"], []).append(line["event_original"])
    events = [line["event_eventbridge"] for line in _spread(lines, 8)]
    return tuple(events + [record for records in by_shape.values() for record in _spread(records, 4)])


@cache
def asff_findings() -> tuple[dict[str, Any], ...]:
    return tuple(line["finding"] for line in _spread(_lines("securityhub/asff_findings.jsonl"), 8))


@cache
def cloudtrail_records() -> tuple[dict[str, Any], ...]:
    return tuple(line["event"] for line in _spread(_lines("cloudtrail/labelled_tests.jsonl"), 12))


def securityhub_event(findings: list[Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": "123456789012",
        "region": "us-east-1",
        "detail": {"findings": findings},
    }


def cloudtrail_event(record: Any) -> dict[str, Any]:
    return {"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": record}


def sns(message: str) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": message}


def s3_notification(bucket: Any, key: Any, size: Any = 100) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}},
            }
        ]
    }


@cache
def envelopes() -> tuple[dict[str, Any], ...]:
    """Every shape of queue message the listener unwraps, with real findings and records inside."""
    found: list[dict[str, Any]] = list(guardduty_records())
    found += [securityhub_event([finding]) for finding in asff_findings()]
    found.append(securityhub_event(list(asff_findings()[:3])))
    found += [cloudtrail_event(record) for record in cloudtrail_records()]
    found.append({"Records": list(cloudtrail_records()[:4])})
    found.append({"Findings": list(guardduty_records()[-3:])})
    found.append(s3_notification("trail", "AWSLogs/1/CloudTrail/us-east-1/f.json.gz"))
    found.append({"version": "0", "detail-type": "Object Created", "source": "aws.s3", "detail": {}})
    found.append(sns(json.dumps(guardduty_records()[0])))
    return tuple(found)


def nested(depth: int, leaf: Any = 0) -> Any:
    """`depth` levels of lists and objects around `leaf`, built without recursion."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def deep_text(depth: int) -> str:
    """`depth` nested arrays as text, never built as objects."""
    return "[" * depth + "]" * depth


# Strings that broke parsers somewhere: a lone surrogate, NUL, right-to-left override, JSON inside a string.
ODD_STRINGS = ["", " ", "\x00", "\ud800", "\u202e", "null", "{}", '{"a": [1', "1e999", "-0", "arn:aws:::", "é" * 7]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(ODD_STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
hostile_values = st.one_of(
    scalars,
    json_values,
    st.integers(min_value=MAX_JSON_DEPTH - 3, max_value=MAX_JSON_DEPTH + 3).map(nested),
    st.sampled_from([[], {}, [[]], {"": {}}]),
    st.integers(min_value=10_000, max_value=200_000).map(lambda n: "x" * n),
)


def _paths(document: Any, path: tuple = ()) -> list[tuple]:
    """Every place in `document`, the root first; iterative, so a deep document cannot overflow it."""
    found, pending = [], [(document, path)]
    while pending and len(found) < 400:
        value, where = pending.pop()
        found.append(where)
        if isinstance(value, dict):
            pending += [(child, (*where, key)) for key, child in value.items()]
        elif isinstance(value, list):
            pending += [(child, (*where, index)) for index, child in enumerate(value)]
    return found


def _get(document: Any, path: tuple) -> Any:
    for step in path:
        document = document[step]
    return document


MUTATIONS = ("replace", "delete", "stringify", "wrap", "empty", "rename")


@st.composite
def mutated(draw, originals: tuple[Any, ...]) -> Any:
    """One of `originals`, changed in a few places: values replaced by hostile ones, keys dropped or renamed,
    objects turned into the JSON text of themselves (as GetFindings' AdditionalInfo is), wrapped in a list,
    emptied."""
    document = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        path = draw(st.sampled_from(_paths(document)))
        value = _get(document, path)
        mutation = draw(st.sampled_from(MUTATIONS))
        if mutation == "replace":  # a copy: sampled values are shared objects, and later mutations change them
            value = copy.deepcopy(draw(hostile_values))
        elif mutation == "stringify":
            value = json.dumps(value)
        elif mutation == "wrap":
            value = [value]
        elif mutation == "empty":
            value = type(value)() if isinstance(value, dict | list | str) else None
        if not path:
            document = value if mutation not in ("delete", "rename") else {}
            continue
        parent, last = _get(document, path[:-1]), path[-1]
        if mutation == "delete":
            del parent[last]
        elif mutation == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = parent.pop(last)
        else:
            parent[last] = value
    return document


def json_text(document: Any) -> str:
    return json.dumps(document, allow_nan=True)


# Text that is almost JSON: real documents cut short, bytes as text, brackets without end.
raw_texts = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda data: data.decode("utf-8", "replace")),
    st.tuples(st.integers(min_value=0, max_value=999), st.integers(min_value=0, max_value=4000)).map(
        lambda pick: json_text(envelopes()[pick[0] % len(envelopes())])[: pick[1]]
    ),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n),
)


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A few kilobytes of gzip that inflate to `inflated_bytes` of zeros."""
    return gzip.compress(b"0" * inflated_bytes, compresslevel=9, mtime=0)


def assert_refusal(rejected: FindingRejected) -> None:
    """A typed refusal a script can sort (`code`) with a reason a person can act on."""
    assert isinstance(rejected.code, str) and rejected.code.replace("_", "").isalpha(), rejected.code
    assert isinstance(rejected.reason, str) and rejected.reason.strip(), rejected
