"""Every public Security Hub (ASFF) finding in the shared corpus through `parse_asff`, and the mapping
rules one at a time: resource vocabulary, GuardDuty types rebuilt from Types, severity, region, state."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from irflow.models.asff import parse_asff
from irflow.models.finding import FindingRejected, FindingSource, ParsedFinding, Severity
from tests.support import CORPORA

CORPUS = CORPORA / "securityhub" / "asff_findings.jsonl"
LINES = [json.loads(line) for line in CORPUS.open() if line.strip()]
GUARDDUTY_TYPES = [
    t["type"] for t in json.loads((CORPORA / "guardduty" / "finding_types_catalogue.json").read_text())["findings"]
]

# ASFF resource types and the GuardDuty word for the same thing, written out independently of the product.
GUARDDUTY_VOCABULARY = {
    "AwsEc2Instance": "Instance",
    "AwsIamAccessKey": "AccessKey",
    "AwsS3Bucket": "S3Bucket",
    "AwsLambdaFunction": "Lambda",
    "AwsRdsDbInstance": "RDSDBInstance",
    "AwsEksCluster": "EKSCluster",
    "AwsEcsCluster": "ECSCluster",
    "AwsIamUser": "IAMUser",
    "AwsIamRole": "IAMRole",
}
# Security Hub's documented Severity.Normalized bands.
NORMALIZED_BANDS = [(90, Severity.CRITICAL), (70, Severity.HIGH), (40, Severity.MEDIUM), (1, Severity.LOW)]
GUARDDUTY_TYPE = re.compile(r"^[A-Za-z]+:[A-Za-z0-9]+/[A-Za-z0-9.!&_]+$")


def _records() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, line, ASFF finding): each line's `finding`, and the findings of its EventBridge event."""
    records = []
    for number, line in enumerate(LINES, start=1):
        records.append((f"line {number} finding", line, line["finding"]))
        if isinstance(line.get("eventbridge_event"), dict):
            for finding in line["eventbridge_event"]["detail"]["findings"]:
                records.append((f"line {number} eventbridge_event", line, finding))
    return records


RECORDS = _records()


def _outcome(finding: dict[str, Any]) -> ParsedFinding | FindingRejected:
    try:
        return parse_asff(finding)
    except FindingRejected as rejected:
        return rejected


PARSED = [(where, line, result) for where, line, f in RECORDS if isinstance(result := _outcome(f), ParsedFinding)]


def _band(normalized: float) -> Severity:
    return next((band for floor, band in NORMALIZED_BANDS if normalized >= floor), Severity.INFORMATIONAL)


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[0] == "arn" else ""


def _with(finding: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(finding)
    changed.update(changes)
    return changed


def _rejection(record: Any) -> FindingRejected:
    with pytest.raises(FindingRejected) as caught:
        parse_asff(record)
    return caught.value


GUARDDUTY_ORIGIN = next(line["finding"] for line in LINES if line["product_arn"].endswith("/guardduty"))
# An AWS Foundational Security Best Practices control failing on an EC2 instance.
EC2_CONTROL = next(
    line["finding"]
    for line in LINES
    if [r["Type"] for r in line["finding"]["Resources"]] == ["AwsEc2Instance"]
    and line["finding"]["ProductArn"].endswith("::product/aws/securityhub")
)


# --- the whole corpus ---


def test_corpus_is_the_documented_one():
    assert len(LINES) == 158
    assert sum(1 for line in LINES if isinstance(line.get("eventbridge_event"), dict)) == 8
    assert len(RECORDS) == 158 + 8


def test_every_corpus_finding_parses_or_is_rejected_with_a_specific_code():
    by_resource_type: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    crashes = []
    for where, _, finding in RECORDS:
        try:
            parsed = parse_asff(finding)
        except FindingRejected as rejected:
            by_code[rejected.code] += 1
            assert rejected.reason.strip() and finding["Id"] in rejected.reason, (where, rejected.reason)
            continue
        except Exception as error:  # noqa: BLE001 (a crash is what this test exists to find)
            crashes.append(f"{where}: {type(error).__name__}: {error}")
            continue
        by_resource_type[parsed.finding.resource.resource_type] += 1
    print(f"\nASFF corpus, {len(RECORDS)} findings")
    print("  parsed, per resource type:")
    for resource_type, count in by_resource_type.most_common():
        print(f"    {resource_type:28} {count}")
    print("  rejected, per code:")
    for code, count in by_code.most_common():
        print(f"    {code:28} {count}")
    assert crashes == []
    assert by_code == {"region_mismatch": 1}
    assert sum(by_resource_type.values()) == len(RECORDS) - 1


def _stated_region(finding: dict[str, Any]) -> str:
    """Where the finding says it is: its Region, else its (first) resource's, else the product ARN's."""
    return finding.get("Region") or finding["Resources"][0].get("Region") or _arn_region(finding["ProductArn"])


def test_the_corpus_finding_whose_resource_is_in_another_region_is_rejected_naming_both():
    mismatched = [
        (where, finding)
        for where, _, finding in RECORDS
        if any(_arn_region(r["Id"]) not in ("", _stated_region(finding)) for r in finding["Resources"])
    ]
    assert len(mismatched) == 1
    [(where, finding)] = mismatched
    rejected = _rejection(finding)
    assert rejected.code == "region_mismatch", where
    resource_arn = finding["Resources"][0]["Id"]
    assert _stated_region(finding) in rejected.reason and _arn_region(resource_arn) in rejected.reason
    assert resource_arn in rejected.reason


def test_resource_types_use_guardduty_vocabulary():
    for where, _, parsed in PARSED:
        raw_types = [r["Type"] for r in parsed.raw["Resources"]]
        resource_type = parsed.finding.resource.resource_type
        assert resource_type not in GUARDDUTY_VOCABULARY, where
        assert resource_type in {GUARDDUTY_VOCABULARY.get(t, t) for t in raw_types}, where
        if len(raw_types) == 1:
            assert resource_type == GUARDDUTY_VOCABULARY.get(raw_types[0], raw_types[0]), where


def test_a_finding_that_lists_several_resources_is_about_the_one_irflow_can_act_on():
    several = [(where, parsed) for where, _, parsed in PARSED if len(parsed.raw["Resources"]) > 1]
    assert len(several) == 10
    for where, parsed in several:
        raw_types = [r["Type"] for r in parsed.raw["Resources"]]
        assert "AwsIamAccessKey" in raw_types, where
        assert parsed.finding.resource.resource_type == "AccessKey", where


def test_every_parsed_finding_is_a_security_hub_finding_with_its_raw_hash():
    for where, _, parsed in PARSED:
        finding = parsed.finding
        assert finding.source == FindingSource.SECURITY_HUB, where
        assert finding.id == parsed.raw["Id"], where
        assert finding.account_id == parsed.raw["AwsAccountId"], where
        assert re.fullmatch(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d", finding.region), (where, finding.region)
        assert re.fullmatch(r"[0-9a-f]{64}", finding.raw_sha256), where
        assert finding.product, where
        assert finding.updated_at >= finding.created_at, where


def test_region_comes_from_the_finding_then_its_resource_then_the_product_arn():
    for where, _, parsed in PARSED:
        assert parsed.finding.region == _stated_region(parsed.raw), where


# --- GuardDuty findings as Security Hub imports them ---


def test_guardduty_origin_findings_get_a_guardduty_style_type():
    guardduty = [(where, parsed) for where, line, parsed in PARSED if line["product_arn"].endswith("/guardduty")]
    assert len(guardduty) == 7  # six findings, one of them also inside a custom-action event
    for where, parsed in guardduty:
        assert GUARDDUTY_TYPE.fullmatch(parsed.finding.type), (where, parsed.finding.type)
        # The last segment of one of Types, with the first '-' after the colon restored to '/'.
        assert any(t.endswith(parsed.finding.type.replace("/", "-", 1)) for t in parsed.raw["Types"]), where
    assert parse_asff(GUARDDUTY_ORIGIN).finding.type == "UnauthorizedAccess:IAMUser/ConsoleLogin"


def test_guardduty_origin_finding_keeps_what_guardduty_said():
    finding = parse_asff(GUARDDUTY_ORIGIN).finding
    assert finding.product == "GuardDuty"
    assert finding.resource.resource_type == "AccessKey"
    assert finding.resource.access_key_id is None  # the record names the key 'null'
    assert finding.resource.user_name == GUARDDUTY_ORIGIN["Resources"][0]["Details"]["AwsIamAccessKey"]["UserName"]
    fields = GUARDDUTY_ORIGIN["ProductFields"]
    assert finding.action_type == fields["action/actionType"] == "AWS_API_CALL"
    assert finding.remote_ip == fields["action/awsApiCallAction/remoteIpDetails/ipAddressV4"]


@pytest.mark.parametrize("guardduty_type", GUARDDUTY_TYPES)
def test_every_catalogued_guardduty_type_survives_the_trip_through_asff(guardduty_type):
    """Security Hub writes a GuardDuty type as the last segment of Types, with its '/' made '-'."""
    asff_type = f"TTPs/Some Tactic/{guardduty_type.replace('/', '-')}"
    record = _with(GUARDDUTY_ORIGIN, Types=["Unusual Behaviors/User/Something", asff_type])
    assert parse_asff(record).finding.type == guardduty_type


def test_catalogue_is_the_documented_one():
    assert len(GUARDDUTY_TYPES) == 204


def test_findings_from_other_products_keep_their_asff_type():
    for where, line, parsed in PARSED:
        if "guardduty" not in line["product_arn"]:
            assert parsed.finding.type == parsed.raw["Types"][0], where


# --- severity ---


def test_corpus_severity_follows_the_label_else_the_normalized_band():
    labelled = 0
    for where, line, parsed in PARSED:
        severity = parsed.raw["Severity"]
        if severity.get("Label"):
            labelled += 1
            assert parsed.finding.severity == severity["Label"], where
            assert line["severity_label"] in (None, severity["Label"]), where
        else:
            assert parsed.finding.severity == _band(severity["Normalized"]), where
        if severity.get("Normalized") is not None:
            assert parsed.finding.severity_score == pytest.approx(severity["Normalized"] / 10), where
    assert labelled > 100


@pytest.mark.parametrize(
    ("normalized", "band"),
    [
        (0, Severity.INFORMATIONAL),
        (1, Severity.LOW),
        (39, Severity.LOW),
        (40, Severity.MEDIUM),
        (69, Severity.MEDIUM),
        (70, Severity.HIGH),
        (89, Severity.HIGH),
        (90, Severity.CRITICAL),
        (100, Severity.CRITICAL),
    ],
)
def test_normalized_only_severity_uses_security_hub_bands(normalized, band):
    finding = parse_asff(_with(EC2_CONTROL, Severity={"Normalized": normalized, "Product": 0})).finding
    assert finding.severity == band
    assert finding.severity_score == pytest.approx(normalized / 10)


def test_label_wins_over_a_normalized_value_from_another_band():
    finding = parse_asff(_with(EC2_CONTROL, Severity={"Label": "INFORMATIONAL", "Normalized": 10})).finding
    assert finding.severity == Severity.INFORMATIONAL


def test_label_is_read_whatever_its_case():
    assert parse_asff(_with(EC2_CONTROL, Severity={"Label": "high", "Normalized": 70})).finding.severity == "HIGH"


@pytest.mark.parametrize("label", list(Severity))
def test_a_label_without_normalized_gets_a_score_inside_its_band(label):
    """Security Hub documents the Normalized value of a bare Label (INFORMATIONAL 0, LOW 1, MEDIUM 40,
    HIGH 70, CRITICAL 90). The score is what the EC2 policy uses to pick the gravest of an incident's
    findings, so a HIGH finding must never score below a LOW one."""
    finding = parse_asff(_with(EC2_CONTROL, Severity={"Label": label.value})).finding
    assert finding.severity == label
    assert _band(finding.severity_score * 10) == label, finding.severity_score


def test_an_unknown_label_is_rejected_naming_it():
    rejected = _rejection(_with(EC2_CONTROL, Severity={"Label": "SEVERE"}))
    assert rejected.code == "invalid_finding"
    assert "SEVERE" in rejected.reason


def test_a_severity_with_neither_label_nor_normalized_is_rejected():
    rejected = _rejection(_with(EC2_CONTROL, Severity={"Product": 5}))
    assert rejected.code == "invalid_finding"
    assert "Label" in rejected.reason and "Normalized" in rejected.reason


# --- EC2 instances ---


def test_ec2_instance_finding_names_its_instance_from_the_resource_arn():
    finding = parse_asff(EC2_CONTROL).finding
    resource_id = EC2_CONTROL["Resources"][0]["Id"]
    assert resource_id.startswith("arn:aws:ec2:us-east-1:")
    assert finding.resource.resource_type == "Instance"
    assert finding.resource.instance_id == resource_id.rsplit("/", 1)[-1]
    assert re.fullmatch(r"i-[0-9a-f]{17}", finding.resource.instance_id)
    assert finding.resource.vpc_ids == (EC2_CONTROL["Resources"][0]["Details"]["AwsEc2Instance"]["VpcId"],)


def test_ec2_instance_with_the_malformed_arn_in_the_corpus_still_names_its_instance():
    """One corpus record writes arn:aws:us-east-1:<account>:instance/i-... (no service segment)."""
    malformed = [
        (where, parsed)
        for where, _, parsed in PARSED
        if any(re.match(r"^arn:aws:us-east-1:\d{12}:instance/i-", r["Id"]) for r in parsed.raw["Resources"])
    ]
    assert len(malformed) == 1
    [(where, parsed)] = malformed
    resource = parsed.raw["Resources"][0]
    assert parsed.finding.resource.instance_id == resource["Id"].rsplit("/", 1)[-1], where
    assert parsed.finding.resource.resource_id == parsed.finding.resource.instance_id
    assert parsed.finding.region == resource["Region"] == "us-east-1"
    details = resource["Details"]["AwsEc2Instance"]
    assert parsed.finding.resource.instance_profile_arn == details["IamInstanceProfileArn"]


def test_every_corpus_instance_finding_names_an_instance_id():
    instances = [(where, parsed) for where, _, parsed in PARSED if parsed.finding.resource.resource_type == "Instance"]
    assert len(instances) == 3
    for where, parsed in instances:
        assert re.fullmatch(r"i-[0-9a-f]{8,17}", parsed.finding.resource.instance_id or ""), where


def test_a_bare_instance_id_as_resource_id_is_understood():
    record = copy.deepcopy(EC2_CONTROL)
    record["Resources"][0]["Id"] = "i-0a1b2c3d4e5f60718"
    assert parse_asff(record).finding.resource.instance_id == "i-0a1b2c3d4e5f60718"


# --- record state, compliance, workflow ---


def test_archived_record_state_means_archived():
    archived = 0
    for where, _, parsed in PARSED:
        expected = parsed.raw.get("RecordState", "ACTIVE") == "ARCHIVED"
        assert parsed.finding.archived is expected, where
        archived += expected
    assert archived == 20


def test_compliance_status_is_carried():
    passed = 0
    for where, _, parsed in PARSED:
        expected = (parsed.raw.get("Compliance") or {}).get("Status")
        assert parsed.finding.compliance_status == expected, where
        passed += expected == "PASSED"
    assert passed >= 7


def test_workflow_status_is_carried():
    resolved = 0
    for where, _, parsed in PARSED:
        raw = parsed.raw
        expected = (raw.get("Workflow") or {}).get("Status") or raw.get("WorkflowState")
        assert parsed.finding.workflow_status == expected, where
        resolved += expected == "RESOLVED"
    assert resolved == 5


def test_who_last_wrote_the_note_and_when_is_carried():
    noted = 0
    for where, _, parsed in PARSED:
        note = parsed.raw.get("Note") or {}
        assert parsed.finding.note_updated_by == note.get("UpdatedBy"), where
        expected = datetime.fromisoformat(note["UpdatedAt"].replace("Z", "+00:00")) if note else None
        assert parsed.finding.note_updated_at == expected, where
        noted += bool(note)
    assert noted >= 1, "the corpus has a noted finding"


def test_irflow_s_own_note_is_read_in_utc():
    note = {
        "Text": "irflow incident ec2-x (confirmed)",
        "UpdatedBy": "irflow",
        "UpdatedAt": "2026-03-02T12:00:00+02:00",
    }
    finding = parse_asff(_with(EC2_CONTROL, Note=note)).finding
    assert (finding.note_updated_by, finding.note_updated_at) == ("irflow", datetime(2026, 3, 2, 10, tzinfo=UTC))


@pytest.mark.parametrize(
    "note",
    [None, "a string", {"Text": "no one, no time"}, {"UpdatedBy": 7, "UpdatedAt": "yesterday"}, {"UpdatedBy": ""}],
)
def test_a_note_that_does_not_say_who_or_when_is_no_reason_to_refuse_the_finding(note):
    finding = parse_asff(_with(EC2_CONTROL, Note=note)).finding
    assert (finding.note_updated_by, finding.note_updated_at) == (None, None)


# --- records that are not usable ASFF findings ---


def test_not_an_object_is_rejected():
    assert _rejection([GUARDDUTY_ORIGIN]).code == "not_an_object"


def test_a_finding_without_account_is_rejected_naming_the_field_and_the_finding():
    record = copy.deepcopy(EC2_CONTROL)
    del record["AwsAccountId"]
    rejected = _rejection(record)
    assert rejected.code == "invalid_finding"
    assert "AwsAccountId" in rejected.reason and EC2_CONTROL["Id"] in rejected.reason


def test_a_finding_with_no_resources_is_rejected_naming_the_finding():
    rejected = _rejection(_with(EC2_CONTROL, Resources=[]))
    assert rejected.code in ("no_resource", "invalid_finding")
    assert EC2_CONTROL["Id"] in rejected.reason


def test_a_finding_whose_resource_arn_names_another_region_is_rejected():
    record = copy.deepcopy(EC2_CONTROL)
    record["Resources"][0]["Id"] = record["Resources"][0]["Id"].replace(":us-east-1:", ":eu-west-3:")
    rejected = _rejection(record)
    assert rejected.code == "region_mismatch"
    assert "us-east-1" in rejected.reason and "eu-west-3" in rejected.reason
