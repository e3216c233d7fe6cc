"""Which findings irflow answers: every suppression rule, each with the reason the listener logs and
counts, and the list settings as operators write them in the environment (comma-separated or JSON)."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from irflow.devstack.demo import sample_finding
from irflow.intake.filters import suppression_reason
from irflow.models.asff import parse_asff
from irflow.models.finding import Finding, Severity, parse_guardduty
from irflow.models.settings import IrflowSettings
from tests.support import CORPORA

INSTANCE_ID = "i-0a1b2c3d4e5f60718"
ACCOUNT, OTHER_ACCOUNT = "111122223333", "444455556666"
ASFF_CORPUS = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]
# An AWS Foundational Security Best Practices control failing on an EC2 instance, as Security Hub sends it.
ASFF_EC2 = next(
    line["finding"]
    for line in ASFF_CORPUS
    if [r["Type"] for r in line["finding"]["Resources"]] == ["AwsEc2Instance"]
    and line["finding"]["ProductArn"].endswith("::product/aws/securityhub")
)


@pytest.fixture(autouse=True)
def no_irflow_environment(monkeypatch):
    """Defaults are the defaults, whatever the shell running the tests exports."""
    for name in list(os.environ):
        if name.startswith("IRFLOW_"):
            monkeypatch.delenv(name)


def _guardduty(severity: float = 8.0, account: str = ACCOUNT, tags: dict[str, str] | None = None, **service) -> Finding:
    event = sample_finding(INSTANCE_ID, account, "eu-west-1", severity=severity)
    if tags is not None:
        event["detail"]["resource"]["instanceDetails"]["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    additional = service.pop("additional_info", None)
    if additional:
        event["detail"]["service"]["additionalInfo"].update(additional)
    event["detail"]["service"].update(service)
    return parse_guardduty(event).finding


def _asff(**changes) -> Finding:
    """The corpus EC2 finding turned into a threat detection (no control result, a TTPs type), unless
    `changes` put a control result back."""
    record = json.loads(json.dumps(ASFF_EC2))
    record.pop("Compliance", None)
    record["Types"] = ["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B"]
    record.update(changes)
    return parse_asff(record).finding


def test_an_ordinary_finding_is_answered_with_default_settings():
    assert suppression_reason(_guardduty(), IrflowSettings()) is None
    assert suppression_reason(_asff(), IrflowSettings()) is None


# --- archived and sample findings ---


def test_archived_guardduty_finding_is_suppressed_unless_accepted():
    finding = _guardduty(archived=True)
    assert finding.archived
    reason = suppression_reason(finding, IrflowSettings())
    assert reason and "archived" in reason and "IRFLOW_ACCEPT_ARCHIVED" in reason
    assert suppression_reason(finding, IrflowSettings(accept_archived=True)) is None


def test_archived_security_hub_finding_is_suppressed():
    finding = _asff(RecordState="ARCHIVED")
    reason = suppression_reason(finding, IrflowSettings())
    assert reason and "archived" in reason
    assert suppression_reason(finding, IrflowSettings(accept_archived=True)) is None


def test_aws_sample_finding_is_suppressed_unless_accepted():
    finding = _guardduty(additional_info={"sample": True})
    assert finding.sample
    reason = suppression_reason(finding, IrflowSettings())
    assert reason and "sample" in reason and "IRFLOW_ACCEPT_SAMPLE_FINDINGS" in reason
    assert suppression_reason(finding, IrflowSettings(accept_sample_findings=True)) is None


# --- severity ---


def test_informational_is_below_the_default_minimum():
    finding = _asff(Severity={"Label": "INFORMATIONAL", "Normalized": 0})
    assert finding.severity == Severity.INFORMATIONAL
    reason = suppression_reason(finding, IrflowSettings())
    assert reason and "INFORMATIONAL" in reason and "IRFLOW_MIN_SEVERITY=LOW" in reason


@pytest.mark.parametrize(
    ("score", "minimum", "suppressed"),
    [
        (3.9, Severity.MEDIUM, True),
        (4.0, Severity.MEDIUM, False),  # at the minimum is answered
        (6.9, Severity.HIGH, True),
        (7.0, Severity.HIGH, False),
        (8.9, Severity.CRITICAL, True),
        (9.0, Severity.CRITICAL, False),
        (1.0, Severity.LOW, False),
        (1.0, Severity.INFORMATIONAL, False),
    ],
)
def test_below_the_minimum_severity_is_suppressed(score, minimum, suppressed):
    finding = _guardduty(severity=score)
    reason = suppression_reason(finding, IrflowSettings(min_severity=minimum))
    assert (reason is not None) is suppressed, reason
    if suppressed:
        assert str(finding.severity) in reason and f"IRFLOW_MIN_SEVERITY={minimum}" in reason


# --- accounts and tags ---


def test_suppressed_account_is_named():
    settings = IrflowSettings(suppress_accounts=[OTHER_ACCOUNT, ACCOUNT])
    reason = suppression_reason(_guardduty(), settings)
    assert reason and ACCOUNT in reason and "IRFLOW_SUPPRESS_ACCOUNTS" in reason
    assert suppression_reason(_guardduty(account="999988887777"), settings) is None


def test_a_tag_key_rule_suppresses_whatever_the_value():
    finding = _guardduty(tags={"Name": "web-1", "irflow:ignore": "until 2026-06"})
    reason = suppression_reason(finding, IrflowSettings(suppress_tags=["irflow:ignore"]))
    assert reason and "'irflow:ignore'" in reason and "IRFLOW_SUPPRESS_TAGS" in reason
    assert suppression_reason(finding, IrflowSettings(suppress_tags=["irflow:ignored"])) is None


def test_a_tag_key_value_rule_needs_the_value_too():
    sandbox = _guardduty(tags={"env": "sandbox"})
    production = _guardduty(tags={"env": "production"})
    settings = IrflowSettings(suppress_tags=["env=sandbox"])
    reason = suppression_reason(sandbox, settings)
    assert reason and "'env=sandbox'" in reason
    assert suppression_reason(production, settings) is None


def test_tag_rules_match_security_hub_resource_tags():
    finding = _asff(Resources=[{**ASFF_EC2["Resources"][0], "Tags": {"team": "red-team", "env": "lab"}}])
    assert finding.resource.tags == {"team": "red-team", "env": "lab"}
    assert suppression_reason(finding, IrflowSettings(suppress_tags=["env=prod", "team=red-team"]))
    assert suppression_reason(finding, IrflowSettings(suppress_tags=["env=prod", "team=blue"])) is None


def test_a_finding_without_tags_is_not_suppressed_by_tag_rules():
    assert suppression_reason(_guardduty(tags={}), IrflowSettings(suppress_tags=["env", "env=lab"])) is None


# --- Security Hub states ---


def test_passed_control_is_suppressed():
    finding = _asff(Compliance={"Status": "PASSED"})
    assert finding.compliance_status == "PASSED"
    reason = suppression_reason(finding, IrflowSettings())
    assert reason and "passed" in reason


@pytest.mark.parametrize("status", ["FAILED", "WARNING", "NOT_AVAILABLE"])
def test_control_results_are_posture_and_suppressed_unless_asked_for(status):
    """A FAILED control (e.g. "EC2 instances should use IMDSv2") is not an attack: isolating the
    instance for it would be an outage, not a response."""
    finding = _asff(Compliance={"Status": status})
    reason = suppression_reason(finding, IrflowSettings())
    assert finding.posture and reason and "IRFLOW_RESPOND_TO_POSTURE_FINDINGS" in reason
    assert suppression_reason(finding, IrflowSettings(respond_to_posture_findings=True)) is None


def test_the_corpus_control_finding_on_an_instance_is_posture():
    finding = parse_asff(json.loads(json.dumps(ASFF_EC2))).finding
    assert finding.posture and suppression_reason(finding, IrflowSettings())


@pytest.mark.parametrize("status", ["SUPPRESSED", "RESOLVED", "resolved"])
def test_closed_workflow_status_is_suppressed(status):
    finding = _asff(Workflow={"Status": status})
    reason = suppression_reason(finding, IrflowSettings())
    assert reason and status in reason and "workflow" in reason


@pytest.mark.parametrize("status", ["NEW", "NOTIFIED"])
def test_open_workflow_status_is_answered(status):
    assert suppression_reason(_asff(Workflow={"Status": status}), IrflowSettings()) is None


# --- a finding irflow resolved, and the activity came back ---

NOTE_AT = "2026-03-02T10:00:00.000Z"


def _resolved(by: str = "irflow", updated_at: str = "2026-03-02T11:30:00.000Z", status: str = "RESOLVED", **changes):
    """A finding as Security Hub shows it after `by` set `status` with a note at NOTE_AT, last updated by its
    provider at `updated_at`."""
    note = {"Text": "irflow incident ec2-x (confirmed): confirmed by alice", "UpdatedBy": by, "UpdatedAt": NOTE_AT}
    return _asff(Workflow={"Status": status}, Note=note, UpdatedAt=updated_at, **changes)


def test_a_finding_irflow_resolved_that_its_provider_updated_since_is_answered():
    """GuardDuty folds the attacker's return into the same finding; Security Hub keeps irflow's RESOLVED."""
    back = _resolved(updated_at="2026-03-02T11:30:00.000Z")
    assert back.workflow_status == "RESOLVED" and back.note_updated_by == "irflow"
    assert suppression_reason(back, IrflowSettings()) is None


@pytest.mark.parametrize(
    "why, finding",
    [
        ("irflow's own update: UpdatedAt unchanged", lambda: _resolved(updated_at="2026-03-02T09:59:00.000Z")),
        ("updated in the same instant", lambda: _resolved(updated_at=NOTE_AT)),
        ("an analyst resolved it", lambda: _resolved(by="arn:aws:iam::111122223333:user/alice")),
        ("a false positive: irflow's SUPPRESSED", lambda: _resolved(status="SUPPRESSED")),
        ("archived since (archiving updates it too)", lambda: _resolved(RecordState="ARCHIVED")),
    ],
)
def test_a_closed_finding_stays_suppressed_unless_irflow_resolved_it_and_it_came_back(why, finding):
    reason = suppression_reason(finding(), IrflowSettings(accept_archived=True))
    assert reason and "workflow status" in reason, why


def test_a_note_that_does_not_say_when_keeps_a_resolved_finding_suppressed():
    finding = _asff(Workflow={"Status": "RESOLVED"}, Note={"Text": "x", "UpdatedBy": "irflow"})
    assert finding.note_updated_by == "irflow" and finding.note_updated_at is None
    assert suppression_reason(finding, IrflowSettings())


def test_the_deprecated_workflow_state_counts_when_workflow_is_absent():
    record = json.loads(json.dumps(ASFF_EC2))
    record.pop("Workflow", None)
    record.pop("Compliance", None)
    record["Types"] = ["TTPs/Initial Access"]
    record["WorkflowState"] = "RESOLVED"
    reason = suppression_reason(parse_asff(record).finding, IrflowSettings())
    assert reason and "RESOLVED" in reason


def test_corpus_passed_and_resolved_findings_are_all_suppressed():
    states = [
        parse_asff(line["finding"]).finding
        for line in ASFF_CORPUS
        if (line["finding"].get("Compliance") or {}).get("Status") == "PASSED"
        or (line["finding"].get("Workflow") or {}).get("Status") == "RESOLVED"
    ]
    assert len(states) >= 7
    for finding in states:
        assert suppression_reason(finding, IrflowSettings()), finding.id
        # and still so when severity is no reason: the state alone suppresses them
        assert suppression_reason(finding, IrflowSettings(min_severity=Severity.INFORMATIONAL)), finding.id


# --- lists from the environment ---


@pytest.mark.parametrize(
    ("variable", "attribute", "text", "expected"),
    [
        ("IRFLOW_SUPPRESS_TAGS", "suppress_tags", "irflow:ignore, env=sandbox", ["irflow:ignore", "env=sandbox"]),
        (
            "IRFLOW_SUPPRESS_TAGS",
            "suppress_tags",
            '["owner=red, blue", "irflow:ignore"]',
            ["owner=red, blue", "irflow:ignore"],
        ),
        ("IRFLOW_SUPPRESS_TAGS", "suppress_tags", "env=sandbox", ["env=sandbox"]),
        ("IRFLOW_SUPPRESS_ACCOUNTS", "suppress_accounts", f"{ACCOUNT},{OTHER_ACCOUNT},", [ACCOUNT, OTHER_ACCOUNT]),
        (
            "IRFLOW_SUPPRESS_ACCOUNTS",
            "suppress_accounts",
            f' ["{ACCOUNT}", "{OTHER_ACCOUNT}"] ',
            [ACCOUNT, OTHER_ACCOUNT],
        ),
        (
            "IRFLOW_QUEUE_URLS",
            "queue_urls",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/gd , https://sqs.eu-west-1.amazonaws.com/111122223333/sh",
            [
                "https://sqs.eu-west-1.amazonaws.com/111122223333/gd",
                "https://sqs.eu-west-1.amazonaws.com/111122223333/sh",
            ],
        ),
        (
            "IRFLOW_QUEUE_URLS",
            "queue_urls",
            '["https://sqs.eu-west-1.amazonaws.com/111122223333/gd"]',
            ["https://sqs.eu-west-1.amazonaws.com/111122223333/gd"],
        ),
        ("IRFLOW_QUEUE_URLS", "queue_urls", "", []),
        ("IRFLOW_SUPPRESS_TAGS", "suppress_tags", "[]", []),
    ],
)
def test_list_settings_read_comma_separated_or_json(monkeypatch, variable, attribute, text, expected):
    monkeypatch.setenv(variable, text)
    assert getattr(IrflowSettings(), attribute) == expected


@pytest.mark.parametrize("attribute", ["queue_urls", "suppress_accounts", "suppress_tags"])
def test_list_settings_default_to_empty(attribute):
    assert getattr(IrflowSettings(), attribute) == []


@pytest.mark.parametrize("variable", ["IRFLOW_SUPPRESS_TAGS", "IRFLOW_SUPPRESS_ACCOUNTS", "IRFLOW_QUEUE_URLS"])
def test_broken_json_list_fails_at_start_naming_the_setting(monkeypatch, variable):
    monkeypatch.setenv(variable, '["a", "b"')
    with pytest.raises(ValidationError) as caught:
        IrflowSettings()
    assert variable.removeprefix("IRFLOW_").lower() in str(caught.value)


def test_environment_settings_drive_suppression(monkeypatch):
    monkeypatch.setenv("IRFLOW_SUPPRESS_ACCOUNTS", OTHER_ACCOUNT)
    monkeypatch.setenv("IRFLOW_SUPPRESS_TAGS", "irflow:ignore,env=sandbox")
    monkeypatch.setenv("IRFLOW_MIN_SEVERITY", "MEDIUM")
    monkeypatch.setenv("IRFLOW_ACCEPT_ARCHIVED", "true")
    settings = IrflowSettings()
    assert suppression_reason(_guardduty(), settings) is None
    assert suppression_reason(_guardduty(archived=True), settings) is None
    assert "IRFLOW_MIN_SEVERITY=MEDIUM" in suppression_reason(_guardduty(severity=2.0), settings)
    assert OTHER_ACCOUNT in suppression_reason(_guardduty(account=OTHER_ACCOUNT), settings)
    assert "'env=sandbox'" in suppression_reason(_guardduty(tags={"env": "sandbox"}), settings)
    assert suppression_reason(_guardduty(tags={"env": "production"}), settings) is None
    assert "'irflow:ignore'" in suppression_reason(_guardduty(tags={"irflow:ignore": ""}), settings)
