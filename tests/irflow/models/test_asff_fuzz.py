"""Fuzzing Security Hub finding parsing (`parse_asff`): real ASFF findings, mutated. Each ends in a finding or a
`FindingRejected` with its reason, never another exception."""

from __future__ import annotations

from hypothesis import given

from irflow.models.asff import parse_asff
from irflow.models.finding import FindingRejected, ParsedFinding
from tests.fuzz_support import asff_findings, assert_refusal, fuzz, json_values, mutated


def _parsed_or_refused(record) -> None:
    try:
        parsed = parse_asff(record)
    except FindingRejected as rejected:
        assert_refusal(rejected)
        return
    assert isinstance(parsed, ParsedFinding)
    parsed.finding.model_dump_json()


@fuzz(max_examples=1200, shrink=False)
@given(mutated(asff_findings()))
def test_mutated_asff_findings_are_parsed_or_refused_with_a_reason(record) -> None:
    _parsed_or_refused(record)


@fuzz(max_examples=300)
@given(json_values)
def test_any_json_value_is_parsed_or_refused_with_a_reason(value) -> None:
    _parsed_or_refused(value)
