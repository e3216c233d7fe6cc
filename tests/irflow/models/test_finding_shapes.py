"""One finding, three shapes (EventBridge envelope, bare camelCase, boto3 GetFindings PascalCase),
one normalised `Finding`; and the records that are not GuardDuty findings, each with its reason."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from irflow.devstack.demo import sample_finding
from irflow.models.finding import FindingRejected, parse_guardduty
from tests.support import CORPORA

INSTANCE_ID = "i-0a1b2c3d4e5f60718"
GUARDDUTY_CORPUS = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").open() if line.strip()]
ASFF_CORPUS = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]


def _pascal_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: _pascal_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_pascal_keys(item) for item in value]
    return value


def as_get_findings(detail: dict[str, Any]) -> dict[str, Any]:
    """The boto3 GetFindings form of a camelCase finding: PascalCase keys, AdditionalInfo as JSON text."""
    camel = copy.deepcopy(detail)
    info = (camel.get("service") or {}).pop("additionalInfo", None)
    pascal = _pascal_keys(camel)
    if info is not None:
        already_encoded = set(info) <= {"value", "type"} and isinstance(info.get("value"), str)
        text = info["value"] if already_encoded else json.dumps(info)
        pascal["Service"]["AdditionalInfo"] = {"Value": text, "Type": "default"}
    return pascal


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    return parse_guardduty(record).finding.model_dump(exclude={"raw_sha256"})


def _rejection(record: Any) -> FindingRejected:
    with pytest.raises(FindingRejected) as caught:
        parse_guardduty(record)
    return caught.value


CORPUS_INSTANCE_AND_KEY = [line for line in GUARDDUTY_CORPUS if line["resource_type"] in ("Instance", "AccessKey")]
CORPUS_GET_FINDINGS = [line for line in GUARDDUTY_CORPUS if line["original_format"] == "getfindings_PascalCase"]


def _arn_region_differs(line: dict[str, Any]) -> bool:
    detail = line["event_eventbridge"]["detail"]
    parts = (detail.get("arn") or "").split(":")
    return len(parts) >= 6 and parts[3] != detail["region"]


CORPUS_REGION_MISMATCH = [line for line in CORPUS_INSTANCE_AND_KEY if _arn_region_differs(line)]
CORPUS_USABLE_INSTANCE_AND_KEY = [line for line in CORPUS_INSTANCE_AND_KEY if not _arn_region_differs(line)]


def test_the_get_findings_builder_produces_what_boto3_returns():
    event = sample_finding(INSTANCE_ID)
    event["detail"]["service"]["additionalInfo"]["sample"] = True
    pascal = as_get_findings(event["detail"])
    assert pascal["AccountId"] == event["detail"]["accountId"]
    assert pascal["Resource"]["InstanceDetails"]["InstanceId"] == INSTANCE_ID
    assert json.loads(pascal["Service"]["AdditionalInfo"]["Value"])["sample"] is True
    assert parse_guardduty(pascal).original_shape == "getfindings_pascalcase"


def test_sample_finding_in_three_shapes_is_one_finding():
    event = sample_finding(INSTANCE_ID, severity=7.5)
    event["detail"]["service"]["additionalInfo"]["sample"] = True
    shapes = [event, event["detail"], as_get_findings(event["detail"])]
    parsed = [parse_guardduty(record) for record in shapes]
    assert [p.original_shape for p in parsed] == ["eventbridge_envelope", "finding_camelcase", "getfindings_pascalcase"]
    assert _comparable(shapes[0]) == _comparable(shapes[1]) == _comparable(shapes[2])
    finding = parsed[2].finding
    assert finding.sample is True
    assert finding.resource.instance_id == INSTANCE_ID
    assert finding.resource.tags == {"Name": "web-1"}
    assert finding.resource.vpc_ids == ("vpc-0abc1234",)
    assert finding.action_type == "DNS_REQUEST"


@pytest.mark.parametrize("line", CORPUS_USABLE_INSTANCE_AND_KEY, ids=lambda line: line["type"])
def test_corpus_finding_in_three_shapes_is_one_finding(line):
    envelope = line["event_eventbridge"]
    detail = envelope["detail"]
    envelope_form, bare_form, pascal_form = (_comparable(r) for r in (envelope, detail, as_get_findings(detail)))
    assert envelope_form == bare_form
    assert pascal_form == envelope_form


@pytest.mark.parametrize("line", CORPUS_REGION_MISMATCH, ids=lambda line: line["type"])
def test_corpus_finding_whose_arn_names_another_region_is_rejected_in_all_three_shapes(line):
    envelope = line["event_eventbridge"]
    detail = envelope["detail"]
    for record in (envelope, detail, as_get_findings(detail)):
        rejected = _rejection(record)
        assert rejected.code == "region_mismatch"
        assert detail["id"] in rejected.reason


def test_corpus_selections_are_the_documented_ones():
    assert len(CORPUS_INSTANCE_AND_KEY) == 54 + 44
    assert len(CORPUS_REGION_MISMATCH) == 1
    assert len(CORPUS_GET_FINDINGS) == 4


@pytest.mark.parametrize("line", CORPUS_GET_FINDINGS, ids=lambda line: line["type"])
def test_corpus_get_findings_record_equals_its_eventbridge_wrap(line):
    assert parse_guardduty(line["event_original"]).original_shape == "getfindings_pascalcase"
    assert _comparable(line["event_original"]) == _comparable(line["event_eventbridge"])


def test_raw_hash_identifies_the_record_not_its_key_order():
    event = sample_finding(INSTANCE_ID)
    reordered = json.loads(json.dumps(event, sort_keys=True))
    reordered["detail"] = dict(reversed(list(reordered["detail"].items())))
    first, again = parse_guardduty(event).finding, parse_guardduty(reordered).finding
    assert re.fullmatch(r"[0-9a-f]{64}", first.raw_sha256)
    assert first.raw_sha256 == again.raw_sha256
    changed = copy.deepcopy(event)
    changed["detail"]["service"]["count"] += 1
    assert parse_guardduty(changed).finding.raw_sha256 != first.raw_sha256


@pytest.mark.parametrize("shape", ["envelope", "camel", "pascal"])
def test_naive_timestamps_come_out_as_utc(shape):
    event = sample_finding(INSTANCE_ID)
    detail = event["detail"]
    detail.update(createdAt="2025-02-25 20:40:06.721", updatedAt="2025-02-25 20:41:00")
    detail["service"]["eventFirstSeen"] = "2025-02-25 20:40:06.000000000"
    record = {"envelope": event, "camel": detail, "pascal": as_get_findings(detail)}[shape]
    finding = parse_guardduty(record).finding
    assert finding.created_at == datetime(2025, 2, 25, 20, 40, 6, 721000, tzinfo=UTC)
    assert finding.created_at.utcoffset() == timedelta(0)
    assert finding.updated_at == datetime(2025, 2, 25, 20, 41, tzinfo=UTC)
    assert finding.first_seen == datetime(2025, 2, 25, 20, 40, 6, tzinfo=UTC)


def test_offset_timestamps_are_converted_to_utc():
    event = sample_finding(INSTANCE_ID)
    event["detail"]["createdAt"] = "2025-02-25T21:28:11.551+05:30"
    created = parse_guardduty(event).finding.created_at
    assert created == datetime(2025, 2, 25, 15, 58, 11, 551000, tzinfo=UTC)
    assert created.utcoffset() == timedelta(0)


# --- records that are not usable GuardDuty findings ---


def test_a_list_is_rejected():
    rejected = _rejection([sample_finding(INSTANCE_ID)])
    assert rejected.code == "not_an_object"
    assert "list" in rejected.reason


def test_a_string_is_rejected():
    rejected = _rejection(json.dumps(sample_finding(INSTANCE_ID)))
    assert rejected.code == "not_an_object"
    assert "str" in rejected.reason


def test_an_eventbridge_event_of_another_kind_is_rejected():
    event = sample_finding(INSTANCE_ID)
    event["detail-type"] = "AWS API Call via CloudTrail"
    event["source"] = "aws.ec2"
    rejected = _rejection(event)
    assert rejected.code == "unsupported_event"
    assert "AWS API Call via CloudTrail" in rejected.reason


def test_a_guardduty_event_without_a_detail_is_rejected():
    event = sample_finding(INSTANCE_ID)
    event["detail"] = None
    assert _rejection(event).code == "invalid_event"


def test_an_asff_security_hub_finding_is_rejected_as_another_format():
    guardduty_origin = next(line for line in ASFF_CORPUS if line["product_arn"].endswith("/guardduty"))
    assert "AwsAccountId" in guardduty_origin["finding"]
    rejected = _rejection(guardduty_origin["finding"])
    assert rejected.code == "unsupported_format"
    assert "Security Hub" in rejected.reason


def test_every_asff_record_is_rejected_never_misread():
    codes = {_rejection(line["finding"]).code for line in ASFF_CORPUS}
    assert codes == {"unsupported_format"}


def test_a_security_hub_custom_action_event_is_rejected():
    line = next(line for line in ASFF_CORPUS if line["eventbridge_detail_type"])
    rejected = _rejection(line["eventbridge_event"])
    assert rejected.code == "unsupported_event"
    assert line["eventbridge_detail_type"] in rejected.reason


def test_a_dict_with_unrelated_keys_is_rejected_naming_its_keys():
    rejected = _rejection({"hello": "world", "colour": "blue"})
    assert rejected.code == "not_a_finding"
    assert "colour" in rejected.reason and "hello" in rejected.reason


def test_a_finding_without_account_is_rejected_naming_the_field():
    detail = sample_finding(INSTANCE_ID)["detail"]
    del detail["accountId"]
    rejected = _rejection(detail)
    assert rejected.code == "invalid_finding"
    assert "accountId" in rejected.reason
    assert detail["id"] in rejected.reason


@pytest.mark.parametrize("score", [11, -1])
def test_a_severity_outside_guardduty_range_is_rejected(score):
    event = sample_finding(INSTANCE_ID)
    event["detail"]["severity"] = score
    rejected = _rejection(event)
    assert rejected.code == "invalid_finding"
    assert "severity" in rejected.reason
    assert event["detail"]["id"] in rejected.reason


def test_rejections_are_value_errors_with_the_reason_as_message():
    rejected = _rejection(42)
    assert isinstance(rejected, ValueError)
    assert str(rejected) == rejected.reason
    assert rejected.reason.strip()
