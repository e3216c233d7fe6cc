"""Every public GuardDuty finding in the shared corpus, in both its stored shapes, through the parser."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from typing import Any

import pytest

from irflow.models.finding import FindingRejected, ParsedFinding, Severity, parse_guardduty
from tests.support import CORPORA

CORPUS = CORPORA / "guardduty" / "findings.jsonl"
SHAPES = ("event_original", "event_eventbridge")
KNOWN_REJECTION_CODES = {
    "not_an_object",
    "unsupported_event",
    "invalid_event",
    "unsupported_format",
    "not_a_finding",
    "no_resource",
    "invalid_finding",
    "region_mismatch",
}


def _load_corpus() -> list[dict[str, Any]]:
    with CORPUS.open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


LINES = _load_corpus()


def _detail(line: dict[str, Any]) -> dict[str, Any]:
    return line["event_eventbridge"]["detail"]


def _arn_region(detail: dict[str, Any]) -> str:
    """The region an ARN names (arn:partition:service:region:account:...), read independently of the product."""
    parts = (detail.get("arn") or "").split(":")
    return parts[3] if len(parts) >= 6 else ""


def _region_disagrees_with_arn(line: dict[str, Any]) -> bool:
    detail = _detail(line)
    return bool(_arn_region(detail)) and _arn_region(detail) != detail["region"]


# Findings irflow can act on: a resource, and an ARN that agrees with the finding's region.
USABLE = [line for line in LINES if _detail(line).get("resource") and not _region_disagrees_with_arn(line)]
REGION_MISMATCHED = [line for line in LINES if _detail(line).get("resource") and _region_disagrees_with_arn(line)]


def _parse_or_rejection(record: dict[str, Any]) -> ParsedFinding | FindingRejected:
    try:
        return parse_guardduty(record)
    except FindingRejected as rejected:
        return rejected


def _guardduty_band(score: float) -> Severity:
    """GuardDuty's documented bands, written out independently of the product."""
    bands = [(9.0, Severity.CRITICAL), (7.0, Severity.HIGH), (4.0, Severity.MEDIUM), (0.0, Severity.LOW)]
    return next(band for floor, band in bands if score >= floor)


def _raw_sample_flag(detail: dict[str, Any]) -> bool:
    """additionalInfo.sample as GuardDuty wrote it; GetFindings-derived records carry it as JSON text."""
    info = (detail.get("service") or {}).get("additionalInfo") or {}
    if set(info) <= {"value", "type"} and isinstance(info.get("value"), str):
        info = json.loads(info["value"])
    return info.get("sample") in (True, "true")


PARSED = [
    (line, shape, result)
    for line in LINES
    for shape in SHAPES
    if isinstance(result := _parse_or_rejection(line[shape]), ParsedFinding)
]


def test_corpus_is_the_documented_one():
    assert len(LINES) == 151
    assert sum(1 for line in LINES if _detail(line).get("resource")) == 145
    assert len(REGION_MISMATCHED) == 1
    assert len(USABLE) == 144


@pytest.mark.parametrize("shape", SHAPES)
def test_every_line_parses_or_is_rejected_with_a_known_code_naming_the_finding(shape):
    parsed, rejected = 0, []
    for line in LINES:
        result = _parse_or_rejection(line[shape])
        if isinstance(result, ParsedFinding):
            parsed += 1
            continue
        assert result.code in KNOWN_REJECTION_CODES, result.code
        assert _detail(line)["id"] in result.reason, result.reason
        rejected.append((line, result))
    assert parsed == 144
    assert len(rejected) == 7
    no_resource = [(line, r) for line, r in rejected if r.code == "no_resource"]
    mismatched = [(line, r) for line, r in rejected if r.code == "region_mismatch"]
    assert len(no_resource) == 6
    assert all(not _detail(line).get("resource") for line, _ in no_resource)
    [(line, rejection)] = mismatched
    assert line is REGION_MISMATCHED[0]
    detail = _detail(line)
    assert detail["region"] in rejection.reason and _arn_region(detail) in rejection.reason, rejection.reason


def test_findings_with_a_resource_all_parse_in_both_shapes():
    for line in USABLE:
        for shape in SHAPES:
            result = _parse_or_rejection(line[shape])
            assert isinstance(result, ParsedFinding), f"{line['type']} ({shape}): {result}"


def test_finding_whose_arn_names_another_region_is_rejected_in_both_shapes():
    for line in REGION_MISMATCHED:
        for shape in SHAPES:
            result = _parse_or_rejection(line[shape])
            assert isinstance(result, FindingRejected), f"{line['type']} ({shape}) parsed"
            assert result.code == "region_mismatch", result.code


def test_parsed_identity_matches_the_record():
    for line, shape, parsed in PARSED:
        finding, detail = parsed.finding, _detail(line)
        assert finding.id == detail["id"], shape
        assert finding.type == line["type"], shape
        assert finding.account_id == detail["accountId"], shape
        assert finding.region == detail["region"], shape
        assert finding.severity_score == line["severity"], shape


def test_resource_type_matches_the_corpus_label():
    labelled = [(line, parsed) for line, _, parsed in PARSED if line["resource_type"] is not None]
    assert len(labelled) == 2 * 144
    for line, parsed in labelled:
        assert parsed.finding.resource.resource_type == line["resource_type"], line["type"]


def test_severity_band_follows_guardduty_bands():
    for line, _, parsed in PARSED:
        assert parsed.finding.severity == _guardduty_band(line["severity"]), line["severity"]


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (1.0, Severity.LOW),
        (3.9, Severity.LOW),
        (4.0, Severity.MEDIUM),
        (6.9, Severity.MEDIUM),
        (7.0, Severity.HIGH),
        (8.9, Severity.HIGH),
        (9.0, Severity.CRITICAL),
        (10.0, Severity.CRITICAL),
    ],
)
def test_severity_band_boundaries(score, band):
    assert Severity.from_guardduty_score(score) == band


def test_sample_flag_follows_additional_info():
    flagged = 0
    for line, shape, parsed in PARSED:
        expected = _raw_sample_flag(_detail(line))
        assert parsed.finding.sample is expected, f"{line['type']} ({shape})"
        flagged += expected
    assert flagged > 0


def test_corpus_is_sample_is_broader_than_guardduty_sample_flag():
    """The corpus labels provenance (AWS-generated sample sets); GuardDuty's flag is additionalInfo.sample.

    Every record GuardDuty flags is labelled a sample; the only disagreements are records whose
    additionalInfo carries no sample flag at all."""
    disagreements = []
    for line in LINES:
        raw_flag = _raw_sample_flag(_detail(line))
        if raw_flag:
            assert line["is_sample"], line["type"]
        elif line["is_sample"]:
            disagreements.append(line)
    for line in disagreements:
        info = (_detail(line).get("service") or {}).get("additionalInfo") or {}
        assert "sample" not in info, line["type"]
    assert len(disagreements) < 5


def test_instance_findings_name_their_instance():
    instances = [(line, parsed) for line, _, parsed in PARSED if line["resource_type"] == "Instance"]
    assert len(instances) == 2 * 54
    for line, parsed in instances:
        resource = parsed.finding.resource
        expected = _detail(line)["resource"]["instanceDetails"]["instanceId"]
        assert resource.instance_id == expected
        assert resource.resource_id == expected


def test_access_key_findings_name_their_key_and_principal():
    keys = [(line, parsed) for line, _, parsed in PARSED if line["resource_type"] == "AccessKey"]
    assert len(keys) == 2 * 43  # 44 in the corpus, one of them names two regions
    for line, parsed in keys:
        raw = _detail(line)["resource"]["accessKeyDetails"]
        resource = parsed.finding.resource
        assert resource.access_key_id == raw.get("accessKeyId")
        assert resource.user_name == raw.get("userName")


def test_all_timestamps_are_timezone_aware_utc():
    for line, _, parsed in PARSED:
        finding = parsed.finding
        for moment in (finding.created_at, finding.updated_at, finding.first_seen, finding.last_seen):
            if moment is not None:
                assert moment.utcoffset() == timedelta(0), line["type"]
                assert moment.tzinfo == UTC, line["type"]
        assert finding.updated_at >= finding.created_at, line["type"]


def test_both_shapes_of_a_line_give_the_same_finding():
    by_line: dict[int, list[ParsedFinding]] = {}
    for line, _, parsed in PARSED:
        by_line.setdefault(id(line), []).append(parsed)
    assert len(by_line) == 144
    for original, wrapped in by_line.values():
        assert original.finding.model_dump(exclude={"raw_sha256"}) == wrapped.finding.model_dump(exclude={"raw_sha256"})
