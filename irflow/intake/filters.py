"""Which findings irflow answers. A suppressed finding is logged and counted, never silently dropped."""

from __future__ import annotations

from irflow.models.finding import Finding
from irflow.models.settings import IrflowSettings
from irflow.models.source_findings import UPDATED_BY

_CLOSED_WORKFLOW = ("SUPPRESSED", "RESOLVED")


def _back_after_irflow_resolved_it(finding: Finding) -> bool:
    """A Security Hub finding irflow itself marked RESOLVED (an incident confirmed it) that its provider has
    updated since: the activity came back, and the attacker's return must reach an incident.

    Security Hub keeps the workflow status when the provider updates a finding: it resets NOTIFIED or RESOLVED to
    NEW only when RecordState goes from ARCHIVED to ACTIVE or ComplianceStatus leaves PASSED (Security Hub API
    reference, Workflow.Status and WorkflowUpdate.Status), and BatchImportFindings cannot change Workflow or Note
    once a finding exists (API reference, BatchImportFindings). GuardDuty folds repeated activity into the same
    finding, same id, count up (GuardDuty user guide, "GuardDuty finding aggregation"): a RESOLVED copy in Security
    Hub stays RESOLVED while the attacker is back. What tells the return apart is UpdatedAt: BatchUpdateFindings
    (irflow's note, an analyst's status) leaves it as it was (user guide, "BatchUpdateFindings for customers"), so
    it only passes the note's UpdatedAt when the provider updated the finding (a higher count comes with it).
    irflow's own update, which Security Hub also sends as "Findings - Imported", stays suppressed: no loop.

    Not let through: an analyst's RESOLVED (the note is theirs, or an older one), a finding whose note time is
    unknown, an archived one (archiving also updates it), and SUPPRESSED, which irflow writes for an analyst's
    "false positive": a repeat of what was judged harmless stays quiet (Security Hub documents a SUPPRESSED finding
    as one that is not updated any more).

    Note.UpdatedBy is free text: anyone allowed securityhub:BatchUpdateFindings can write "irflow". A forged note
    can only make irflow answer a finding it would otherwise suppress, never suppress one: it hides nothing (to
    hide a finding one sets RESOLVED under any name, which this rule does not make easier).
    """
    return (
        (finding.workflow_status or "").upper() == "RESOLVED"
        and finding.note_updated_by == UPDATED_BY
        and finding.note_updated_at is not None
        and not finding.archived
        and finding.updated_at > finding.note_updated_at
    )


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
    if (finding.workflow_status or "").upper() in _CLOSED_WORKFLOW and not _back_after_irflow_resolved_it(finding):
        return f"Security Hub workflow status is {finding.workflow_status}"
    return None
