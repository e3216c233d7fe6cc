"""What irflow.models.source_findings makes of a finding before activities/source_findings.py tells AWS about it:
the detector of a GuardDuty finding, the ProductArn of a Security Hub finding, and which findings are irflow's own
(in no AWS service). The console links are tested through the notifications that carry them (test_notify.py)."""

from __future__ import annotations

import pytest

from irflow.devstack.demo import sample_finding
from irflow.models.asff import parse_asff
from irflow.models.finding import FindingSource, pack_raw, parse_guardduty, unpack_raw
from irflow.models.source_findings import not_from_aws, source_finding
from tests.activities.test_source_findings import ACCOUNT, DETECTOR, REGION, asff_record, guardduty_arn


def test_a_guardduty_finding_is_named_by_its_arn():
    event = sample_finding("i-0123456789abcdef0", ACCOUNT, REGION, finding_id="a" * 32)
    event["detail"]["arn"] = guardduty_arn("a" * 32)
    named = source_finding(parse_guardduty(event).finding)
    assert (named.source, named.guardduty_id, named.detector_id, named.product_arn) == (
        FindingSource.GUARDDUTY,
        "a" * 32,
        DETECTOR,
        None,
    )


def test_a_guardduty_finding_without_an_arn_takes_its_detector_from_the_record():
    event = sample_finding("i-0123456789abcdef0", ACCOUNT, REGION, finding_id="a" * 32)
    del event["detail"]["arn"]
    event["detail"]["service"]["detectorId"] = DETECTOR
    parsed = parse_guardduty(event)
    assert source_finding(parsed.finding).detector_id is None
    raw = unpack_raw(pack_raw(parsed.raw))  # as the incident keeps it
    assert source_finding(parsed.finding, raw).detector_id == DETECTOR


@pytest.mark.parametrize(
    "finding_id, product_name, product",
    [
        ("arn:aws:inspector2:us-east-1:123456789012:finding/abc", None, "inspector"),
        (
            "arn:aws:securityhub:us-east-1:123456789012:subscription/aws-foundational/v/1.0.0/EC2.8/finding/x",
            None,
            "securityhub",
        ),
        ("macie-finding-3", "Macie", "macie"),
        ("analyzer-finding", "IAM Access Analyzer", "access-analyzer"),
    ],
)
def test_the_product_arn_of_aws_products_is_made_when_the_record_is_not_kept(finding_id, product_name, product):
    parsed = parse_asff(asff_record(finding_id, product_arn=f"arn:aws:securityhub:{REGION}::product/aws/{product}"))
    finding = parsed.finding.model_copy(update={"product": product_name or parsed.finding.product})
    assert source_finding(finding).product_arn == f"arn:aws:securityhub:{REGION}::product/aws/{product}"


def test_a_third_party_product_arn_comes_only_from_the_record():
    product = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
    parsed = parse_asff(asff_record("custom-1", product_arn=product, product_name="Acme EDR"))
    assert source_finding(parsed.finding).product_arn is None
    assert source_finding(parsed.finding, parsed.raw).product_arn == product


def test_irflow_s_own_findings_are_not_aws_findings():
    event = sample_finding("i-0123456789abcdef0", ACCOUNT, REGION)
    finding = parse_guardduty(event).finding
    assert not_from_aws(finding) is None
    detection = finding.model_copy(update={"source": FindingSource.IRFLOW_DETECTION, "type": "irflow:Recon/Probe"})
    assert "irflow's own detection" in not_from_aws(detection)
    tamper = detection.model_copy(update={"type": "irflow:Tamper/UpdateAccessKey"})
    assert "tamper" in not_from_aws(tamper)
