"""An incident's findings across runs (irflow.models.carry_over): past the cap, the latest few are kept whole, with
whatever decides who may decide and how the playbooks plan; every one is counted in the summary."""

from __future__ import annotations

from irflow.devstack.demo import sample_access_key_finding
from irflow.models.carry_over import KEPT_FINDINGS, FindingsSummary, kept_findings
from irflow.models.finding import Severity, parse_guardduty


def finding(count: int = 1, user: str = "build-bot", severity: float = 8.0):
    event = sample_access_key_finding(user, "AKIAEXAMPLEKEY000001", "111122223333", severity=severity)
    event["detail"]["service"]["count"] = count
    return parse_guardduty(event).finding


def test_findings_past_the_cap_are_counted_and_who_they_name_is_kept():
    findings = [finding(1, severity=5.0), finding(2, user="mallory")] + [finding(n) for n in range(3, 60)]
    findings.insert(30, finding(99, severity=8.9))
    kept = kept_findings(findings)
    assert len(kept) == KEPT_FINDINGS
    assert kept[0] is findings[0] and kept[-1] is findings[-1], "the first and the latest"
    assert any(f.resource.user_name == "mallory" for f in kept), "who a finding names still cannot decide"
    assert max(f.severity_score for f in kept) == 8.9
    summary = FindingsSummary(absorbed=0)
    for f in findings:
        summary.count(f)
    assert summary.absorbed == len(findings) and summary.ids == [findings[0].id] and summary.highest == Severity.HIGH


def test_a_few_findings_are_all_kept():
    findings = [finding(n) for n in range(KEPT_FINDINGS)]
    assert kept_findings(findings) == findings
