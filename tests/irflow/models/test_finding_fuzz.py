"""Fuzzing GuardDuty finding parsing (`parse_guardduty`) and the JSON guard every parser of hostile text uses
(`loads_json`): real findings in their three shapes, mutated, and text nested far deeper than any finding. Each
ends in a finding or a `FindingRejected` with its reason, never another exception."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irflow.models.finding import MAX_JSON_DEPTH, FindingRejected, ParsedFinding, loads_json, parse_guardduty
from tests.fuzz_support import assert_refusal, deep_text, fuzz, guardduty_records, json_values, mutated, nested


def _parsed_or_refused(record) -> ParsedFinding | FindingRejected:
    try:
        parsed = parse_guardduty(record)
    except FindingRejected as rejected:
        assert_refusal(rejected)
        return rejected
    assert isinstance(parsed, ParsedFinding)
    parsed.finding.model_dump_json()  # it travels in workflow inputs
    return parsed


@fuzz(max_examples=1000)
@given(mutated(guardduty_records()))
def test_mutated_guardduty_findings_are_parsed_or_refused_with_a_reason(record) -> None:
    _parsed_or_refused(record)


@fuzz(max_examples=300)
@given(json_values)
def test_any_json_value_is_parsed_or_refused_with_a_reason(value) -> None:
    _parsed_or_refused(value)


def _getfindings_record() -> dict:
    record = next(r for r in guardduty_records() if "AccountId" in r and "Service" in r)
    return copy.deepcopy(record)


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_getfindings_additional_info_nested_past_what_python_parses_is_refused_with_the_reason(depth) -> None:
    """AdditionalInfo is JSON text inside the record, decoded by the model (`finding_shapes`); deep enough to
    overflow Python's stack it is refused. (Shallower, it is read for `sample` and dropped: never kept deep.)"""
    record = _getfindings_record()
    record["Service"]["AdditionalInfo"] = {"Value": deep_text(depth), "Type": "default"}
    with pytest.raises(FindingRejected) as refused:
        parse_guardduty(record)
    assert refused.value.code == "too_deep"
    assert refused.value.reason.endswith(f"service.additionalInfo is nested deeper than {MAX_JSON_DEPTH} levels")


def test_getfindings_additional_info_nested_within_the_limit_is_read() -> None:
    record = _getfindings_record()
    record["Service"]["AdditionalInfo"] = {"Value": json.dumps({"sample": True, "x": nested(30)}), "Type": "default"}
    assert parse_guardduty(record).finding.sample is True


@pytest.mark.parametrize(
    "text",
    [deep_text(100_000), '{"a":' * 100_000, json.dumps(nested(MAX_JSON_DEPTH + 1))],
    ids=["arrays", "unclosed objects", "one level too deep"],
)
def test_text_nested_deeper_than_the_limit_is_refused_never_a_recursion_error(text) -> None:
    with pytest.raises(FindingRejected) as refused:
        loads_json(text, "the text")
    assert (refused.value.code, refused.value.reason) == (
        "too_deep",
        f"the text is nested deeper than {MAX_JSON_DEPTH} levels",
    )


@fuzz(max_examples=300)
@given(st.integers(min_value=1, max_value=MAX_JSON_DEPTH + 40), st.sampled_from(["[", '{"k":']), st.integers(0, 3))
def test_the_depth_limit_is_exact_whatever_the_brackets_around_it(depth, opener, siblings) -> None:
    """Brackets inside strings, empty containers beside the deep one and many shallow ones (more brackets than
    the limit, so the document is walked) neither hide depth nor invent it."""
    closer = "]" if opener == "[" else "}"
    text = opener * depth + '"[[[{{{"' + closer * depth
    text = "[" + ", ".join(["[]", "{}", '"]]]}}}"'][:siblings] + [text] + ["[0]"] * MAX_JSON_DEPTH) + "]"
    depth += 1  # the list around it
    if depth > MAX_JSON_DEPTH:
        with pytest.raises(FindingRejected):
            loads_json(text, "the text")
    else:
        assert loads_json(text, "the text") == json.loads(text)


def test_a_lone_surrogate_is_refused_and_a_surrogate_pair_read() -> None:
    """`\\ud800` alone decodes to a str nothing can encode (hashing, logging, Temporal); `\\ud83d\\ude00` is 😀."""
    with pytest.raises(FindingRejected) as refused:
        loads_json('{"userName": "al\\ud800ice"}', "the text")
    assert refused.value.code == "not_text"
    assert refused.value.reason.startswith("the text holds an unpaired UTF-16 surrogate")
    assert loads_json('{"userName": "al\\ud83d\\ude00ice", "path": "C:\\\\udir"}', "the text") == {
        "userName": "al😀ice",
        "path": "C:\\udir",
    }
