"""Closing the loop for findings in member accounts: GuardDuty lets only the administrator archive, a member cannot
archive even its own findings (API reference, ArchiveFindings), so a member's findings are archived through the
security account's detector (ListDetectors there), while their feedback is given in the member account, on the
finding's own detector. Requests checked by botocore's Stubber against the models."""

from __future__ import annotations

import pytest

from activities.source_findings import update_source_findings
from irflow.models.finding import FindingSource
from irflow.models.source_findings import SourceFinding, SourceFindingsUpdate, Verdict
from tests.activities.test_source_findings import (
    ACCOUNT,
    DETECTOR,
    INCIDENT,
    OTHER_ACCOUNT,
    REGION,
    Stubs,
    _setting,
)

SECURITY = ACCOUNT
MEMBER = OTHER_ACCOUNT
MEMBER_DETECTOR = "34cd56ef789a0b1c2d3e4f5a6b7c8d9e"
FALSE_POSITIVE_NOTE = f"irflow incident {INCIDENT} (false-positive)"


@pytest.fixture
def stubs(monkeypatch) -> Stubs:
    _setting(monkeypatch, "IRFLOW_SECURITY_ACCOUNT_ID", SECURITY)
    return Stubs(monkeypatch)


def member_finding(finding_id: str, region: str = REGION) -> SourceFinding:
    return SourceFinding(
        source=FindingSource.GUARDDUTY,
        id=finding_id,
        account_id=MEMBER,
        region=region,
        guardduty_id=finding_id,
        detector_id=MEMBER_DETECTOR,
    )


def rejected(*findings: SourceFinding) -> SourceFindingsUpdate:
    return SourceFindingsUpdate(incident_id=INCIDENT, verdict=Verdict.FALSE_POSITIVE, findings=list(findings))


def expect_feedback(stubs: Stubs, ids: list[str], region: str = REGION) -> None:
    stubs.of("guardduty", region, MEMBER).add_response(
        "update_findings_feedback",
        {},
        {"DetectorId": MEMBER_DETECTOR, "FindingIds": ids, "Feedback": "NOT_USEFUL", "Comments": FALSE_POSITIVE_NOTE},
    )


def test_a_member_s_finding_gets_its_feedback_there_and_is_archived_by_the_administrator(stubs):
    expect_feedback(stubs, ["a" * 32])
    security = stubs.of("guardduty", REGION, SECURITY)
    security.add_response("list_detectors", {"DetectorIds": [DETECTOR]}, {})
    security.add_response("archive_findings", {}, {"DetectorId": DETECTOR, "FindingIds": ["a" * 32]})
    result = update_source_findings(rejected(member_finding("a" * 32)))
    stubs.all_answered()  # and nothing was asked of the member's GuardDuty but its feedback
    assert result.changed is True and result.detail["failed"] == [] and "skipped" not in result.detail
    assert result.detail["sent"] == [
        {"api": "guardduty:UpdateFindingsFeedback", "account": MEMBER, "region": REGION, "finding_ids": ["a" * 32]},
        {
            "api": "guardduty:ArchiveFindings",
            "account": SECURITY,
            "region": REGION,
            "finding_ids": ["a" * 32],
            "finding_account": MEMBER,
        },
    ]


def test_the_administrator_s_detector_is_looked_up_once_per_region(stubs):
    ids = [f"{n:032x}" for n in range(60)]
    expect_feedback(stubs, ids[:50])
    expect_feedback(stubs, ids[50:])
    expect_feedback(stubs, ["f" * 32], "eu-west-1")
    here, there = stubs.of("guardduty", REGION, SECURITY), stubs.of("guardduty", "eu-west-1", SECURITY)
    here.add_response("list_detectors", {"DetectorIds": [DETECTOR]}, {})
    here.add_response("archive_findings", {}, {"DetectorId": DETECTOR, "FindingIds": ids[:50]})
    here.add_response("archive_findings", {}, {"DetectorId": DETECTOR, "FindingIds": ids[50:]})
    there.add_response("list_detectors", {"DetectorIds": ["eu-detector"]}, {})
    there.add_response("archive_findings", {}, {"DetectorId": "eu-detector", "FindingIds": ["f" * 32]})
    findings = [member_finding(i) for i in ids] + [member_finding("f" * 32, "eu-west-1")]
    result = update_source_findings(rejected(*findings))
    stubs.all_answered()
    assert result.detail["failed"] == []
    archived = [c for c in result.detail["sent"] if c["api"] == "guardduty:ArchiveFindings"]
    assert [(c["account"], c["region"], len(c["finding_ids"])) for c in archived] == [
        (SECURITY, REGION, 50),
        (SECURITY, REGION, 10),
        (SECURITY, "eu-west-1", 1),
    ]


def test_without_a_detector_in_the_security_account_the_archive_is_skipped_and_says_why(stubs):
    expect_feedback(stubs, ["a" * 32, "b" * 32])
    stubs.of("guardduty", REGION, SECURITY).add_response("list_detectors", {"DetectorIds": []}, {})
    result = update_source_findings(rejected(member_finding("a" * 32), member_finding("b" * 32)))
    stubs.all_answered()
    assert result.detail["failed"] == []
    assert [c["api"] for c in result.detail["sent"]] == ["guardduty:UpdateFindingsFeedback"]
    why = (
        "archive skipped: member accounts cannot archive their findings, only their GuardDuty administrator, and the "
        f"security account {SECURITY} has no detector in {REGION}"
    )
    assert result.detail["skipped"] == [
        {"finding_id": "a" * 32, "reason": why},
        {"finding_id": "b" * 32, "reason": why},
    ]


def test_a_refused_detector_lookup_is_recorded_and_the_feedback_still_sent(stubs):
    expect_feedback(stubs, ["a" * 32])
    stubs.of("guardduty", REGION, SECURITY).add_client_error(
        "list_detectors", "AccessDeniedException", "not authorized to perform: guardduty:ListDetectors", 403
    )
    result = update_source_findings(rejected(member_finding("a" * 32)))
    stubs.all_answered()
    assert result.changed is True
    assert result.detail["failed"] == [
        {
            "api": "guardduty:ArchiveFindings",
            "account": SECURITY,
            "region": REGION,
            "finding_ids": ["a" * 32],
            "finding_account": MEMBER,
            "reason": "the security account's detector is unknown: AccessDeniedException: not authorized to perform: "
            "guardduty:ListDetectors",
        }
    ]


def test_an_administrator_that_is_not_the_member_s_records_guardduty_s_refusal(stubs):
    """The security account is not this account's GuardDuty administrator (or the account stands alone): GuardDuty
    refuses, and the refusal is written down, never raised."""
    expect_feedback(stubs, ["a" * 32])
    security = stubs.of("guardduty", REGION, SECURITY)
    security.add_response("list_detectors", {"DetectorIds": [DETECTOR]}, {})
    security.add_client_error("archive_findings", "BadRequestException", "The request is rejected.", 400)
    result = update_source_findings(rejected(member_finding("a" * 32)))
    stubs.all_answered()
    [failed] = result.detail["failed"]
    assert (failed["api"], failed["account"], failed["finding_account"]) == (
        "guardduty:ArchiveFindings",
        SECURITY,
        MEMBER,
    )
    assert failed["reason"] == "BadRequestException: The request is rejected."
