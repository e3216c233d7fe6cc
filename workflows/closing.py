"""Closing the loop with AWS (docs/operations.md, "Closing the loop"): the incident's source findings are told
what came of them. Once containment completes, its Security Hub findings become NOTIFIED; when the incident ends,
before its report is written (so the report shows it), GuardDuty gets its feedback (and the archive the settings
ask for) and Security Hub RESOLVED or SUPPRESSED with a note naming the incident. Best-effort: a refusal is recorded,
never fatal. irflow's own findings (tamper, detection) are in no AWS service and are left out."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.source_findings import update_source_findings
    from irflow.models.finding import Finding, FindingSource, unpack_raw
    from irflow.models.incident import RELATED_DELIVERY_PREFIX, DecisionKind, IncidentState, Status
    from irflow.models.source_findings import (
        SourceFinding,
        SourceFindingsUpdate,
        Verdict,
        not_from_aws,
        source_finding,
    )

from workflows.activity_options import QUICK
from workflows.record import IncidentRecord


def closing_verdict(state: IncidentState) -> tuple[Verdict | None, str]:
    """What the ended incident says of its findings, in words: confirmed (approved, eradicated, released after
    recovery, a triage approved), a false positive (rejected, before or after containment), or nothing (it failed
    or was cancelled: nobody judged the finding)."""
    decided = [d for d in state.decisions if d.settles]
    last = decided[-1] if decided else None
    by = f" by {last.by}" if last else ""
    if state.status == Status.RESOLVED:
        if last is not None and last.kind == DecisionKind.RELEASE:
            return Verdict.CONFIRMED, f"confirmed, released after recovery{by}"
        eradicated = f"; eradication: {state.eradication}" if state.eradication else ""
        return Verdict.CONFIRMED, f"confirmed{by}{eradicated}"
    if state.status == Status.ROLLED_BACK and last is not None and last.kind == DecisionKind.REJECT:
        reason = f": {last.comment}" if last.comment else ""
        return Verdict.FALSE_POSITIVE, f"rejected as a false positive{by}{reason}"
    why = f": {state.failure_reason}" if state.failure_reason else ""
    return None, f"the incident ended {state.status}{why}; nobody judged its findings"


def _raw(finding: Finding, packed: str | None) -> dict | None:
    """The original record, when it tells what the finding does not keep (a ProductArn, a detector without an
    ARN); None otherwise, or when it cannot be read."""
    if not packed or (finding.source != FindingSource.SECURITY_HUB and finding.arn):
        return None
    try:
        return unpack_raw(packed)
    except (ValueError, OSError, EOFError):
        return None


class SourceFindings:
    """The incident's findings as AWS names them, and what it tells them."""

    def __init__(self, record: IncidentRecord) -> None:
        self.record = record
        self._kept: dict[tuple[str, str], SourceFinding] = {}
        self._not_told: dict[str, str] = {}
        self.keep(record.request.finding, record.request.raw_packed, record.request.delivery_id)

    def keep(self, finding: Finding, raw_packed: str | None, delivery_id: str = "") -> None:
        """A finding the incident answers: the first, or one that joined it (a repeat is kept once). One another
        incident handed over (an attack sequence's, a role's) is that incident's to answer: told twice, the last
        child to end would overwrite the verdict of the whole sequence."""
        key = (str(finding.source), finding.id)
        if key in self._kept or finding.id in self._not_told:
            return
        reason = not_from_aws(finding)
        if delivery_id.startswith(RELATED_DELIVERY_PREFIX):
            reason = f"handed over by incident {delivery_id.removeprefix(RELATED_DELIVERY_PREFIX).split(':')[0]}"
        if reason:
            self._not_told[finding.id] = reason
            return
        self._kept[key] = source_finding(finding, _raw(finding, raw_packed))

    def contained(self) -> None:
        """Containment completed: Security Hub's findings become NOTIFIED, in the background (the report waits)."""
        hub = [f for f in self._kept.values() if f.source == FindingSource.SECURITY_HUB]
        if hub:
            self.record.in_background(self._tell(Verdict.CONTAINED, "contained; an analyst decides next", hub))

    async def closed(self) -> None:
        """The incident ended: its verdict to every AWS finding it answered, or a note saying why none."""
        verdict, words = closing_verdict(self.record.state)
        if self._not_told:
            left = "; ".join(f"{i}: {reason}" for i, reason in self._not_told.items())
            self.record.note(f"not told to AWS: {left}")
        if verdict is None:
            self.record.note(f"source findings left as they are: {words}")
        elif self._kept:
            await self._tell(verdict, words, list(self._kept.values()))

    async def _tell(self, verdict: Verdict, words: str, findings: list[SourceFinding]) -> None:
        request = SourceFindingsUpdate(
            incident_id=self.record.incident_id, verdict=verdict, words=words, findings=findings
        )
        await self.record.try_act(update_source_findings, request, QUICK)
