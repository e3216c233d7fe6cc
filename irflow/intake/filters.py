"""Which findings irflow answers. A suppressed finding is logged and counted, never silently dropped."""

from __future__ import annotations

from irflow.models.finding import Finding
from irflow.models.settings import IrflowSettings

_CLOSED_WORKFLOW = ("SUPPRESSED", "RESOLVED")


def _tag_rule_matches(rule: str, tags: dict[str, str]) -> bool:
    key, _, value = rule.partition("=")
    return key in tags and (not value or tags[key] == value)


def suppression_reason(finding: Finding, settings: IrflowSettings) -> str | None:
    """None when irflow should respond; otherwise why not, in words for the log and the counters."""
    if finding.archived and not settings.accept_archived:
        return "archived finding (IRFLOW_ACCEPT_ARCHIVED is off)"
    if finding.sample and not settings.accept_sample_findings:
        return "AWS sample finding (IRFLOW_ACCEPT_SAMPLE_FINDINGS is off)"
    if finding.severity.rank < settings.min_severity.rank:
        return f"severity {finding.severity} below IRFLOW_MIN_SEVERITY={settings.min_severity}"
    if finding.account_id in settings.suppress_accounts:
        return f"account {finding.account_id} is in IRFLOW_SUPPRESS_ACCOUNTS"
    for rule in settings.suppress_tags:
        if _tag_rule_matches(rule, finding.resource.tags):
            return f"resource tag matches IRFLOW_SUPPRESS_TAGS rule {rule!r}"
    if finding.compliance_status == "PASSED":
        return "Security Hub control passed: nothing to respond to"
    if finding.posture and not settings.respond_to_posture_findings:
        return (
            "configuration/compliance check, not a threat detection (IRFLOW_RESPOND_TO_POSTURE_FINDINGS is off): "
            "irflow contains attacks, it does not remediate posture"
        )
    if (finding.workflow_status or "").upper() in _CLOSED_WORKFLOW:
        return f"Security Hub workflow status is {finding.workflow_status}"
    return None
