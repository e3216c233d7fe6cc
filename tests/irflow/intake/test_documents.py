"""Reading finding documents as the CLI and the listener receive them: one object, an array, JSON
lines, GetFindings output; each record becomes a finding or the reason it was refused."""

from __future__ import annotations

import json

import pytest

from irflow.devstack.demo import sample_finding
from irflow.intake.documents import read_findings
from irflow.models.finding import FindingRejected, ParsedFinding

INSTANCE_IDS = ["i-0a1b2c3d4e5f60718", "i-0a1b2c3d4e5f60719", "i-0a1b2c3d4e5f6071a"]


def _events() -> list[dict]:
    return [sample_finding(iid, finding_id=f"finding{n}") for n, iid in enumerate(INSTANCE_IDS)]


def _pascal(value):
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def _findings(text: str) -> list:
    """What `read_findings` reads, each result without its arrival."""
    return [result for result, _ in read_findings(text)]


def _outcomes(results: list) -> list[str]:
    """What a user reads back: the instance of each finding, or the rejection code."""
    return [r.finding.resource.instance_id if isinstance(r, ParsedFinding) else r.code for r in results]


def test_single_object():
    results = _findings(json.dumps(_events()[0], indent=2))
    assert _outcomes(results) == INSTANCE_IDS[:1]
    assert results[0].original_shape == "eventbridge_envelope"


def test_json_array_keeps_order():
    assert _outcomes(_findings(json.dumps(_events()))) == INSTANCE_IDS


def test_json_array_with_a_bad_record_reports_it_in_place():
    events = _events()
    document = [events[0], {"unrelated": True}, events[2]]
    assert _outcomes(_findings(json.dumps(document))) == [INSTANCE_IDS[0], "not_a_finding", INSTANCE_IDS[2]]


def test_json_lines():
    text = "\n".join(json.dumps(e) for e in _events()) + "\n"
    assert _outcomes(_findings(text)) == INSTANCE_IDS


def test_json_lines_mixed_good_and_bad_keep_order_and_name_the_bad_line():
    events = _events()
    lines = [json.dumps(events[0]), '{"truncated": ', json.dumps(events[1]), "not json", json.dumps(events[2])]
    results = _findings("\n".join(lines))
    assert _outcomes(results) == [INSTANCE_IDS[0], "not_json", INSTANCE_IDS[1], "not_json", INSTANCE_IDS[2]]
    assert "line 2" in results[1].reason
    assert "line 4" in results[3].reason


def test_json_lines_skip_blank_lines_and_still_count_them():
    events = _events()
    text = f"{json.dumps(events[0])}\n\n{json.dumps(events[1])}\n\nnot json\n"
    results = _findings(text)
    assert _outcomes(results) == [INSTANCE_IDS[0], INSTANCE_IDS[1], "not_json"]
    assert "line 5" in results[2].reason


def test_json_lines_line_numbers_count_leading_blank_lines():
    """A user opens the file at the line the reason names: leading blank lines count too."""
    text = f"\n\n{json.dumps(_events()[0])}\nnot json\n"
    results = _findings(text)
    assert _outcomes(results) == [INSTANCE_IDS[0], "not_json"]
    assert "line 4" in results[1].reason, results[1].reason


def test_json_lines_with_a_rejected_finding_keep_the_others():
    events = _events()
    del events[1]["detail"]["accountId"]
    text = "\n".join(json.dumps(e) for e in events)
    results = _findings(text)
    assert _outcomes(results) == [INSTANCE_IDS[0], "invalid_finding", INSTANCE_IDS[2]]
    assert "accountId" in results[1].reason


def test_get_findings_output():
    findings = [_pascal(e["detail"]) for e in _events()]
    for finding in findings:
        finding["Service"]["AdditionalInfo"] = {"Value": "{}", "Type": "default"}
    document = {"Findings": findings, "ResponseMetadata": {"HTTPStatusCode": 200}}
    results = _findings(json.dumps(document))
    assert _outcomes(results) == INSTANCE_IDS
    assert {r.original_shape for r in results} == {"getfindings_pascalcase"}


def test_get_findings_output_with_no_findings_is_one_rejection():
    """Never silence: an empty GetFindings page on a queue goes to the dead-letter queue with a reason."""
    (result,) = _findings(json.dumps({"Findings": []}))
    assert isinstance(result, FindingRejected) and result.code == "empty"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_empty_input_is_one_rejection(text):
    results = _findings(text)
    assert len(results) == 1
    assert isinstance(results[0], FindingRejected)
    assert results[0].code == "empty"


@pytest.mark.parametrize("text", ["this is not JSON at all", "<html><body>502</body></html>", "{'single': 'quotes'}"])
def test_text_that_is_not_json_raises(text):
    with pytest.raises(FindingRejected) as caught:
        _findings(text)
    assert caught.value.code == "not_json"
    assert "not JSON" in caught.value.reason


def test_a_json_scalar_is_rejected_not_crashed():
    results = _findings("42")
    assert len(results) == 1
    assert results[0].code == "not_an_object"


def test_each_finding_keeps_how_it_arrived():
    """A file's EventBridge event says who published it, as a queue message's does: `intake.trust` judges it."""
    event = _events()[0]
    bare = event["detail"]
    [(_, arrived), (_, alone)] = read_findings(f"{json.dumps(event)}\n{json.dumps(bare)}\n")
    assert (arrived.event_source, arrived.detail_type) == ("aws.guardduty", "GuardDuty Finding")
    assert alone.bare
