"""Fuzzing `irflow ingest`'s reading of files (`read_findings`): one document, JSON lines, pretty-printed
documents one after another, raw text. Every input ends in findings and typed refusals naming their line, or in
one refusal of the whole input (`FindingRejected`, which `irflow ingest` prints), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irflow.intake.documents import read_findings
from irflow.intake.envelopes import Arrival
from irflow.models.finding import MAX_JSON_DEPTH, FindingRejected, ParsedFinding
from tests.fuzz_support import (
    assert_refusal,
    deep_text,
    envelopes,
    fuzz,
    guardduty_records,
    json_text,
    mutated,
    raw_texts,
)


def _checked(text: str) -> list[FindingRejected]:
    try:
        arrived = read_findings(text)
    except FindingRejected as refused:  # the whole input: `irflow ingest` names the file and the reason
        assert_refusal(refused)
        return [refused]
    refusals = []
    for result, arrival in arrived:
        assert isinstance(arrival, Arrival)
        if isinstance(result, FindingRejected):
            assert_refusal(result)
            refusals.append(result)
        else:
            assert isinstance(result, ParsedFinding)  # no detection in `irflow ingest`: no log-file references
    return refusals


layouts = st.sampled_from(["one", "lines", "pretty", "pretty stream"])


def _laid_out(documents: list, layout: str) -> str:
    if layout == "one":
        return json_text(documents)
    if layout == "lines":
        return "\n".join(json_text(d) for d in documents)
    if layout == "pretty":
        return json.dumps(documents, indent=2)
    return "\n".join(json.dumps(d, indent=2) for d in documents)


@fuzz(max_examples=400)
@given(st.lists(mutated(envelopes()), min_size=1, max_size=3), layouts)
def test_files_of_mutated_findings_end_in_findings_or_typed_refusals(documents, layout) -> None:
    _checked(_laid_out(documents, layout))


@fuzz(max_examples=300)
@given(st.lists(raw_texts, min_size=1, max_size=3))
def test_any_text_ends_in_findings_or_typed_refusals(pieces) -> None:
    _checked("\n".join(pieces))


@pytest.mark.parametrize("layout", ["lines", "pretty stream"])
def test_a_line_nested_100_000_deep_is_refused_with_its_line_and_the_good_finding_before_it_read(layout) -> None:
    good = guardduty_records()[0]
    text = _laid_out([good], layout) + "\n" + deep_text(100_000) + "\n"
    first, deep = read_findings(text)
    assert isinstance(first[0], ParsedFinding)
    line = text[: text.index("[[[")].count("\n") + 1
    assert (deep[0].code, deep[0].reason) == ("too_deep", f"line {line} is nested deeper than {MAX_JSON_DEPTH} levels")


def test_a_file_that_is_one_document_nested_100_000_deep_is_refused_with_the_reason() -> None:
    [(refused, _)] = read_findings(deep_text(100_000))
    assert (refused.code, refused.reason) == ("too_deep", f"line 1 is nested deeper than {MAX_JSON_DEPTH} levels")
