"""Closing the loop: the requests update_source_findings sends are the documented ones, checked by botocore's
Stubber against each service's model (its expected_params say exactly what is sent); batching; errors recorded,
never raised; nothing sent when the setting is off. What irflow.models.source_findings makes of a finding is
test_source_findings_naming.py's."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError

import activities.source_findings as module
from activities.source_findings import update_source_findings
from irflow.devstack.demo import sample_finding
from irflow.models.asff import parse_asff
from irflow.models.finding import FindingSource, parse_guardduty
from irflow.models.settings import get_settings
from irflow.models.source_findings import SourceFinding, SourceFindingsUpdate, Verdict, source_finding

ACCOUNT, OTHER_ACCOUNT, REGION = "123456789012", "210987654321", "us-east-1"
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
INCIDENT = "ec2-123456789012-us-east-1-i-0abc-20261207T125819Z"
GUARDDUTY_PRODUCT = f"arn:aws:securityhub:{REGION}::product/aws/guardduty"
MACIE_PRODUCT = f"arn:aws:securityhub:{REGION}::product/aws/macie"


def guardduty_arn(finding_id: str, detector: str = DETECTOR, account: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:guardduty:{region}:{account}:detector/{detector}/finding/{finding_id}"


def asff_record(
    finding_id: str,
    product_arn: str = MACIE_PRODUCT,
    resource: dict[str, Any] | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
    product_name: str | None = None,
) -> dict[str, Any]:
    """A Security Hub (ASFF) finding about `resource` (an S3 bucket unless said), as Security Hub stores it."""
    record = {
        "SchemaVersion": "2018-10-08",
        "Id": finding_id,
        "ProductArn": product_arn,
        "GeneratorId": "irflow-test",
        "AwsAccountId": account,
        "Region": region,
        "Types": ["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS"],
        "CreatedAt": "2026-01-05T10:00:00Z",
        "UpdatedAt": "2026-01-05T10:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "irflow test finding",
        "Description": "irflow test finding",
        "Resources": [resource or {"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::demo-bucket", "Partition": "aws"}],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }
    if product_name:
        record["ProductName"] = product_name
    return record


def guardduty_finding(finding_id: str) -> SourceFinding:
    event = sample_finding("i-0123456789abcdef0", ACCOUNT, REGION, finding_id=finding_id)
    event["detail"]["service"]["detectorId"] = DETECTOR
    event["detail"]["arn"] = guardduty_arn(finding_id)
    return source_finding(parse_guardduty(event).finding)


def hub_finding(finding_id: str, account: str = ACCOUNT, region: str = REGION) -> SourceFinding:
    parsed = parse_asff(asff_record(finding_id, account=account, region=region))
    return source_finding(parsed.finding, parsed.raw)


class Stubs:
    """Stubbed clients in place of activities.aws.client's, one per (service, region, account); a call to any other
    fails the test (an AssertionError is no AWS error: the activity lets it through)."""

    def __init__(self, monkeypatch) -> None:
        self.stubbers: dict[tuple[str, str, str], tuple[Any, Stubber]] = {}
        monkeypatch.setattr(module, "client", self.client)

    def of(self, service: str, region: str = REGION, account: str = ACCOUNT) -> Stubber:
        key = (service, region, account)
        if key not in self.stubbers:
            made = boto3.client(service, region_name=region)
            stubber = Stubber(made)
            stubber.activate()
            self.stubbers[key] = (made, stubber)
        return self.stubbers[key][1]

    def client(self, service: str, region: str | None, account_id: str | None = None) -> Any:
        key = (service, region or "", account_id or "")
        assert key in self.stubbers, f"unexpected client {key}"
        return self.stubbers[key][0]

    def all_answered(self) -> None:
        for _, stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def stubs(monkeypatch) -> Stubs:
    return Stubs(monkeypatch)


@pytest.fixture(autouse=True)
def security_account(monkeypatch) -> str:
    """The worker runs in ACCOUNT: findings there are archived on their own detector (test_source_findings_accounts.py
    has the members')."""
    _setting(monkeypatch, "IRFLOW_SECURITY_ACCOUNT_ID", ACCOUNT)
    return ACCOUNT


def _setting(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()


# --- GuardDuty ---


def test_a_rejected_guardduty_incident_sends_not_useful_feedback_then_archives(stubs):
    findings = [guardduty_finding("a" * 32), guardduty_finding("b" * 32)]
    note = f"irflow incident {INCIDENT} (false-positive): rejected as a false positive by alice: pentest"
    guardduty = stubs.of("guardduty")
    ids = ["a" * 32, "b" * 32]
    guardduty.add_response(
        "update_findings_feedback",
        {},
        {"DetectorId": DETECTOR, "FindingIds": ids, "Feedback": "NOT_USEFUL", "Comments": note},
    )
    guardduty.add_response("archive_findings", {}, {"DetectorId": DETECTOR, "FindingIds": ids})
    request = SourceFindingsUpdate(
        incident_id=INCIDENT,
        verdict=Verdict.FALSE_POSITIVE,
        words="rejected as a false positive by alice: pentest",
        findings=findings,
    )
    result = update_source_findings(request)
    stubs.all_answered()
    assert result.changed is True and result.detail["failed"] == []
    assert [c["api"] for c in result.detail["sent"]] == [
        "guardduty:UpdateFindingsFeedback",
        "guardduty:ArchiveFindings",
    ]


@pytest.mark.parametrize(
    "setting, verdict, archived",
    [
        ("false-positive", Verdict.CONFIRMED, False),
        ("closed", Verdict.CONFIRMED, True),
        ("closed", Verdict.FALSE_POSITIVE, True),
        ("never", Verdict.FALSE_POSITIVE, False),
    ],
)
def test_confirmed_findings_get_useful_feedback_and_archiving_follows_the_setting(
    stubs, monkeypatch, setting, verdict, archived
):
    _setting(monkeypatch, "IRFLOW_ARCHIVE_GUARDDUTY_FINDINGS", setting)
    guardduty = stubs.of("guardduty")
    feedback = "USEFUL" if verdict == Verdict.CONFIRMED else "NOT_USEFUL"
    expected = {
        "DetectorId": DETECTOR,
        "FindingIds": ["c" * 32],
        "Feedback": feedback,
        "Comments": f"irflow incident {INCIDENT} ({verdict})",
    }
    guardduty.add_response("update_findings_feedback", {}, expected)
    if archived:
        guardduty.add_response("archive_findings", {}, {"DetectorId": DETECTOR, "FindingIds": ["c" * 32]})
    request = SourceFindingsUpdate(incident_id=INCIDENT, verdict=verdict, findings=[guardduty_finding("c" * 32)])
    result = update_source_findings(request)
    stubs.all_answered()
    assert result.detail["failed"] == [], result.detail
    assert ("guardduty:ArchiveFindings" in [c["api"] for c in result.detail["sent"]]) is archived


def test_containment_tells_guardduty_nothing(stubs):
    request = SourceFindingsUpdate(
        incident_id=INCIDENT, verdict=Verdict.CONTAINED, findings=[guardduty_finding("d" * 32)]
    )
    result = update_source_findings(request)
    assert result.changed is False and result.detail["sent"] == [] and result.detail["failed"] == []


# --- Security Hub ---


def test_a_confirmed_security_hub_incident_resolves_its_findings_with_a_note(stubs):
    finding = hub_finding("macie-finding-1")
    assert finding.product_arn == MACIE_PRODUCT, "the ProductArn of the record"
    note = f"irflow incident {INCIDENT} (confirmed): confirmed by alice; eradication: stop"
    stubs.of("securityhub").add_response(
        "batch_update_findings",
        {"ProcessedFindings": [{"Id": "macie-finding-1", "ProductArn": MACIE_PRODUCT}], "UnprocessedFindings": []},
        {
            "FindingIdentifiers": [{"Id": "macie-finding-1", "ProductArn": MACIE_PRODUCT}],
            "Workflow": {"Status": "RESOLVED"},
            "VerificationState": "TRUE_POSITIVE",
            "Note": {"Text": note, "UpdatedBy": "irflow"},
        },
    )
    request = SourceFindingsUpdate(
        incident_id=INCIDENT,
        verdict=Verdict.CONFIRMED,
        words="confirmed by alice; eradication: stop",
        findings=[finding],
    )
    result = update_source_findings(request)
    stubs.all_answered()
    assert result.changed is True and result.detail["failed"] == []
    assert result.detail["sent"] == [
        {
            "api": "securityhub:BatchUpdateFindings",
            "account": ACCOUNT,
            "region": REGION,
            "finding_ids": ["macie-finding-1"],
        }
    ]


@pytest.mark.parametrize(
    "verdict, status, verification",
    [(Verdict.CONTAINED, "NOTIFIED", None), (Verdict.FALSE_POSITIVE, "SUPPRESSED", "FALSE_POSITIVE")],
)
def test_security_hub_status_follows_the_verdict(stubs, verdict, status, verification):
    expected = {
        "FindingIdentifiers": [{"Id": "macie-finding-2", "ProductArn": MACIE_PRODUCT}],
        "Workflow": {"Status": status},
        "Note": {"Text": f"irflow incident {INCIDENT} ({verdict})", "UpdatedBy": "irflow"},
    }
    if verification:
        expected["VerificationState"] = verification
    stubs.of("securityhub").add_response(
        "batch_update_findings",
        {"ProcessedFindings": expected["FindingIdentifiers"], "UnprocessedFindings": []},
        expected,
    )
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=verdict, findings=[hub_finding("macie-finding-2")])
    )
    stubs.all_answered()
    assert result.detail["failed"] == []


def test_a_security_hub_copy_of_a_guardduty_finding_is_told_in_both(stubs):
    record = asff_record(guardduty_arn("e" * 32), product_arn=GUARDDUTY_PRODUCT, product_name="GuardDuty")
    parsed = parse_asff(record)
    finding = source_finding(parsed.finding)  # no raw: the ProductArn is made from the GuardDuty ARN
    assert (finding.product_arn, finding.detector_id, finding.guardduty_id) == (GUARDDUTY_PRODUCT, DETECTOR, "e" * 32)
    note = f"irflow incident {INCIDENT} (false-positive)"
    stubs.of("guardduty").add_response(
        "update_findings_feedback",
        {},
        {"DetectorId": DETECTOR, "FindingIds": ["e" * 32], "Feedback": "NOT_USEFUL", "Comments": note},
    )
    stubs.of("guardduty").add_response("archive_findings", {}, {"DetectorId": DETECTOR, "FindingIds": ["e" * 32]})
    identifier = {"Id": guardduty_arn("e" * 32), "ProductArn": GUARDDUTY_PRODUCT}
    stubs.of("securityhub").add_response(
        "batch_update_findings",
        {"ProcessedFindings": [identifier], "UnprocessedFindings": []},
        {
            "FindingIdentifiers": [identifier],
            "Workflow": {"Status": "SUPPRESSED"},
            "VerificationState": "FALSE_POSITIVE",
            "Note": {"Text": note, "UpdatedBy": "irflow"},
        },
    )
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.FALSE_POSITIVE, findings=[finding])
    )
    stubs.all_answered()
    assert result.detail["failed"] == [] and len(result.detail["sent"]) == 3


# --- batches and places ---


def test_findings_are_sent_in_batches_per_detector_account_and_region(stubs):
    ids = [f"{n:032x}" for n in range(120)]
    other = SourceFinding(
        source=FindingSource.GUARDDUTY,
        id="f" * 32,
        account_id=OTHER_ACCOUNT,
        region="eu-west-1",
        guardduty_id="f" * 32,
        detector_id="other-detector",
    )
    findings = [
        SourceFinding(
            source=FindingSource.GUARDDUTY,
            id=i,
            account_id=ACCOUNT,
            region=REGION,
            guardduty_id=i,
            detector_id=DETECTOR,
        )
        for i in ids
    ] + [other]
    here, there = stubs.of("guardduty"), stubs.of("guardduty", "eu-west-1", OTHER_ACCOUNT)
    comments = f"irflow incident {INCIDENT} (confirmed)"
    for batch in (ids[:50], ids[50:100], ids[100:]):
        here.add_response(
            "update_findings_feedback",
            {},
            {"DetectorId": DETECTOR, "FindingIds": batch, "Feedback": "USEFUL", "Comments": comments},
        )
    there.add_response(
        "update_findings_feedback",
        {},
        {"DetectorId": "other-detector", "FindingIds": ["f" * 32], "Feedback": "USEFUL", "Comments": comments},
    )
    hub_ids = [f"hub-{n}" for n in range(230)]
    hub = stubs.of("securityhub")
    for batch in (hub_ids[:100], hub_ids[100:200], hub_ids[200:]):
        identifiers = [{"Id": i, "ProductArn": MACIE_PRODUCT} for i in batch]
        hub.add_response(
            "batch_update_findings",
            {"ProcessedFindings": identifiers, "UnprocessedFindings": []},
            {
                "FindingIdentifiers": identifiers,
                "Workflow": {"Status": "RESOLVED"},
                "VerificationState": "TRUE_POSITIVE",
                "Note": {"Text": comments, "UpdatedBy": "irflow"},
            },
        )
    hub_findings = [
        SourceFinding(
            source=FindingSource.SECURITY_HUB, id=i, account_id=ACCOUNT, region=REGION, product_arn=MACIE_PRODUCT
        )
        for i in hub_ids
    ]
    request = SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.CONFIRMED, findings=findings + hub_findings)
    result = update_source_findings(request)
    stubs.all_answered()
    assert result.detail["failed"] == []
    assert [len(c["finding_ids"]) for c in result.detail["sent"]] == [50, 50, 20, 1, 100, 100, 30]


def test_the_same_finding_twice_is_sent_once(stubs):
    twice = [guardduty_finding("a" * 32), guardduty_finding("a" * 32)]
    stubs.of("guardduty").add_response(
        "update_findings_feedback",
        {},
        {
            "DetectorId": DETECTOR,
            "FindingIds": ["a" * 32],
            "Feedback": "USEFUL",
            "Comments": f"irflow incident {INCIDENT} (confirmed)",
        },
    )
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.CONFIRMED, findings=twice)
    )
    stubs.all_answered()
    assert result.detail["failed"] == [] and result.detail["sent"][0]["finding_ids"] == ["a" * 32]


# --- best-effort ---


def test_aws_errors_are_recorded_with_their_reason_and_never_raised(stubs):
    guardduty = stubs.of("guardduty")
    guardduty.add_client_error(
        "update_findings_feedback",
        "AccessDeniedException",
        "not authorized to perform: guardduty:UpdateFindingsFeedback",
    )
    guardduty.add_client_error("archive_findings", "BadRequestException", "The request is rejected.", 400)
    gone = {"Id": "macie-gone", "ProductArn": MACIE_PRODUCT}
    kept = {"Id": "macie-kept", "ProductArn": MACIE_PRODUCT}
    stubs.of("securityhub").add_response(
        "batch_update_findings",
        {
            "ProcessedFindings": [kept],
            "UnprocessedFindings": [
                {"FindingIdentifier": gone, "ErrorCode": "FindingNotFound", "ErrorMessage": "Finding Not Found"}
            ],
        },
    )
    findings = [guardduty_finding("a" * 32), hub_finding("macie-gone"), hub_finding("macie-kept")]
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.FALSE_POSITIVE, findings=findings)
    )
    stubs.all_answered()
    reasons = {(f["api"], tuple(f["finding_ids"])): f["reason"] for f in result.detail["failed"]}
    assert reasons == {
        ("guardduty:UpdateFindingsFeedback", ("a" * 32,)): "AccessDeniedException: not authorized to perform: "
        "guardduty:UpdateFindingsFeedback",
        ("guardduty:ArchiveFindings", ("a" * 32,)): "BadRequestException: The request is rejected.",
        ("securityhub:BatchUpdateFindings", ("macie-gone",)): "FindingNotFound: Finding Not Found",
    }
    assert result.detail["sent"] == [
        {"api": "securityhub:BatchUpdateFindings", "account": ACCOUNT, "region": REGION, "finding_ids": ["macie-kept"]}
    ]
    assert result.changed is True


def test_an_account_irflow_cannot_enter_is_recorded(monkeypatch):
    def refused(service, region, account_id=None):
        raise ApplicationError(f"cannot act in account {account_id}: AssumeRole failed", type="AccessDenied")

    monkeypatch.setattr(module, "client", refused)
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.CONFIRMED, findings=[hub_finding("macie-1")])
    )
    assert result.changed is False
    [failed] = result.detail["failed"]
    assert failed["reason"].startswith("AccessDenied: cannot act in account")


def test_nothing_is_sent_when_the_setting_is_off(stubs, monkeypatch):
    _setting(monkeypatch, "IRFLOW_UPDATE_SOURCE_FINDINGS", "false")
    findings = [guardduty_finding("a" * 32), hub_finding("macie-1")]
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.FALSE_POSITIVE, findings=findings)
    )
    assert result.changed is False
    assert result.detail == {
        "verdict": "false-positive",
        "reason": "IRFLOW_UPDATE_SOURCE_FINDINGS is off: nothing was sent to AWS",
    }
    assert stubs.stubbers == {}, "no client was even made"


def test_findings_that_cannot_be_named_are_skipped_with_the_reason(stubs):
    no_arn = SourceFinding(source=FindingSource.GUARDDUTY, id="a" * 32, account_id=ACCOUNT, region=REGION)
    custom = SourceFinding(source=FindingSource.SECURITY_HUB, id="custom-1", account_id=ACCOUNT, region=REGION)
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.CONFIRMED, findings=[no_arn, custom])
    )
    assert result.changed is False and result.detail["sent"] == []
    assert result.detail["skipped"] == [
        {"finding_id": "a" * 32, "reason": "no GuardDuty detector id: the finding has no ARN"},
        {"finding_id": "custom-1", "reason": "its ProductArn is unknown: Security Hub cannot name it"},
    ]


def test_a_call_whose_every_finding_security_hub_refused_updated_nothing(stubs):
    gone = {"Id": "macie-gone", "ProductArn": MACIE_PRODUCT}
    refused = {"FindingIdentifier": gone, "ErrorCode": "FindingNotFound", "ErrorMessage": "Finding Not Found"}
    stubs.of("securityhub").add_response(
        "batch_update_findings", {"ProcessedFindings": [], "UnprocessedFindings": [refused]}
    )
    result = update_source_findings(
        SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.CONTAINED, findings=[hub_finding("macie-gone")])
    )
    stubs.all_answered()
    assert result.changed is False and result.detail["sent"] == []
    assert [f["finding_ids"] for f in result.detail["failed"]] == [["macie-gone"]]
