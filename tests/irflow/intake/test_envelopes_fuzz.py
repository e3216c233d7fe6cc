"""Fuzzing the listener's unwrapping of queue messages (`unwrap_text_arrivals`): real envelopes mutated, carried
bare, in SNS or in a list, and raw text. Every message ends in findings, log-file references or typed refusals
with their reasons (which the listener dead-letters), never in another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from irflow.detection.detector import Detector
from irflow.intake.envelopes import MAX_ITEMS_PER_MESSAGE, Arrival, LogFileReference, unwrap_text_arrivals
from irflow.models.finding import MAX_JSON_DEPTH, FindingRejected, ParsedFinding, pack_raw, unpack_raw
from tests.fuzz_support import (
    assert_refusal,
    deep_text,
    envelopes,
    fuzz,
    guardduty_records,
    json_text,
    mutated,
    nested,
    raw_texts,
    sns,
)
from tests.support import CORPORA

_DETECTOR: list[Detector] = []


@pytest.fixture(scope="module", autouse=True)
def detector():
    """One detector for the module, with the corpus's Sigma rules: built once, it costs most of a second."""
    _DETECTOR.append(Detector([CORPORA / "sigma" / "rules"]))
    yield
    _DETECTOR.clear()


def _checked(text: str) -> list[FindingRejected]:
    """Unwrap `text` as the listener does; check every result; the refusals."""
    refusals = []
    for result, arrival in unwrap_text_arrivals(text, _DETECTOR[0]):
        assert isinstance(arrival, Arrival)
        if currently_in_test_context():  # what came out, in --hypothesis-show-statistics
            event(result.code if isinstance(result, FindingRejected) else type(result).__name__)
        if isinstance(result, FindingRejected):
            assert_refusal(result)
            refusals.append(result)
        elif isinstance(result, ParsedFinding):
            # what travels on to Temporal must serialise: the finding, and the raw record packed
            result.finding.model_dump_json()
            assert isinstance(unpack_raw(pack_raw(result.raw)), dict)
        else:
            assert isinstance(result, LogFileReference) and result.bucket and result.key
    return refusals


carriers = st.sampled_from(["bare", "sns", "list", "sns in sns"])


def _carried(document, carrier: str) -> str:
    if carrier == "sns":
        return json_text(sns(json_text(document)))
    if carrier == "list":
        return json_text([document, guardduty_records()[0]])
    if carrier == "sns in sns":
        return json_text(sns(json_text(sns(json_text(document)))))
    return json_text(document)


@fuzz(max_examples=1000)
@given(mutated(envelopes()), carriers)
def test_mutated_envelopes_end_in_findings_or_typed_refusals(document, carrier) -> None:
    _checked(_carried(document, carrier))


@fuzz(max_examples=500)
@given(raw_texts)
def test_any_text_ends_in_findings_or_typed_refusals(text) -> None:
    _checked(text)


def test_every_real_envelope_unwraps_without_a_refusal_of_its_form() -> None:
    """The fuzz starts from envelopes irflow reads: none is refused for being too deep or holding too much."""
    for document in envelopes():
        codes = {r.code for r in _checked(json_text(document))}
        assert not codes & {"too_deep", "too_many", "not_json"}, (document, codes)


@pytest.mark.parametrize("carrier", ["bare", "sns", "sns in sns", "list"])
def test_a_message_nested_100_000_deep_is_refused_with_the_reason(carrier) -> None:
    body = deep_text(100_000)
    text = {
        "bare": body,
        "sns": json_text(sns(body)),
        "sns in sns": json_text(sns(json_text(sns(body)))),
        "list": f"[{body}]",
    }[carrier]
    [(refused, _)] = unwrap_text_arrivals(text, _DETECTOR[0])
    assert refused.code == "too_deep"
    where = "SNS notification's Message" if carrier.startswith("sns") else "message body"
    assert refused.reason == f"{where} is nested deeper than {MAX_JSON_DEPTH} levels"


def test_a_finding_one_level_deeper_than_the_limit_is_refused_and_one_at_the_limit_is_read() -> None:
    event = json.loads(json.dumps(guardduty_records()[0]))
    assert event["detail-type"] == "GuardDuty Finding"
    # the event, its detail and the service object: 3 levels around the evidence
    event["detail"]["service"] = {**event["detail"].get("service", {}), "evidence": nested(MAX_JSON_DEPTH - 2)}
    [(refused, _)] = unwrap_text_arrivals(json_text(event))
    assert (refused.code, refused.reason) == ("too_deep", f"message body is nested deeper than {MAX_JSON_DEPTH} levels")
    event["detail"]["service"]["evidence"] = nested(MAX_JSON_DEPTH - 3)
    [(parsed, _)] = unwrap_text_arrivals(json_text(event))
    assert isinstance(parsed, ParsedFinding), parsed


@pytest.mark.parametrize(
    "document",
    [
        [{}] * (MAX_ITEMS_PER_MESSAGE + 1),
        {"Findings": [{}] * (MAX_ITEMS_PER_MESSAGE + 1)},
        {"Records": [{}] * (MAX_ITEMS_PER_MESSAGE + 1)},
        [[{}] * (MAX_ITEMS_PER_MESSAGE // 2)] * 3,
    ],
    ids=["list", "GetFindings", "CloudTrail records", "lists of lists"],
)
def test_a_message_of_thousands_of_tiny_items_is_refused_whole_with_the_reason(document) -> None:
    [(refused, _)] = unwrap_text_arrivals(json_text(document), _DETECTOR[0])
    assert refused.code == "too_many"
    assert f"more than {MAX_ITEMS_PER_MESSAGE} findings and CloudTrail records in one message" in refused.reason


def test_a_finding_with_a_lone_surrogate_is_refused_before_anything_hashes_or_logs_it() -> None:
    event = json.loads(json.dumps(guardduty_records()[0]))
    event["detail"]["title"] = "\ud800"
    [(refused, _)] = unwrap_text_arrivals(json_text(event))
    assert refused.code == "not_text" and refused.reason.startswith("message body holds an unpaired UTF-16 surrogate")
