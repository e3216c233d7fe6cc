"""IncidentWorkflow: one incident, one workflow, walking the NIST SP 800-61 phases.

detection & analysis → [approval if policy asks] → containment (saga) → evidence → analyst decision →
eradication & recovery → post-incident report. The resource-specific work lives in a playbook; this
class keeps the record, talks to analysts and undoes what must be undone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from irflow.models.errors import NOT_FOUND
    from irflow.models.finding import Finding
    from irflow.models.incident import (
        ActionRecord,
        ActionStatus,
        Decision,
        DecisionKind,
        DecisionOutcome,
        EvidenceObject,
        FindingDelivery,
        IncidentInput,
        IncidentState,
        ManifestInput,
        NotifyInput,
        PendingDecision,
        Phase,
        RawFindingInput,
        Status,
        StepResult,
        TimelineEntry,
    )

from workflows import search_attributes as sa
from workflows.activity_options import QUICK, UNDO
from workflows.ec2_playbook import Ec2Playbook
from workflows.iam_role_playbook import IamRolePlaybook
from workflows.iam_user_playbook import IamUserPlaybook
from workflows.lambda_playbook import LambdaPlaybook
from workflows.playbook import Playbook
from workflows.policy import approvals_required, decision_refusal, eradication_choice, incident_severity
from workflows.rds_playbook import RdsPlaybook
from workflows.s3_bucket_playbook import S3BucketPlaybook
from workflows.saga import Saga, Undo
from workflows.triage_playbook import TriagePlaybook

# Delivery ids are remembered to recognise redelivered messages; a storm beyond this is counted as is.
MAX_REMEMBERED_DELIVERIES = 10_000

PLAYBOOKS: dict[str, type[Playbook]] = {
    p.name: p
    for p in (
        Ec2Playbook,
        IamUserPlaybook,
        IamRolePlaybook,
        LambdaPlaybook,
        RdsPlaybook,
        S3BucketPlaybook,
        TriagePlaybook,
    )
}


def error_type(error: BaseException) -> str | None:
    cause = error.cause if isinstance(error, ActivityError) else error
    return cause.type if isinstance(cause, ApplicationError) else None


def error_text(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return str(cause) or type(cause).__name__


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, request: IncidentInput) -> None:
        self.request = request
        self.state = IncidentState(
            incident_id=request.incident_id,
            playbook=request.playbook,
            severity=request.finding.severity,
            finding=request.finding,
            findings_absorbed=[request.finding],
            # The router's name for the subject (a user, not one of their keys), so the search attribute
            # set at start and the one the workflow keeps up to date agree.
            resource_id=request.resource_id or request.finding.resource.resource_id or "",
            received_at=request.received_at,
        )
        self.saga = Saga()
        self._decision: Decision | None = None
        self._published: tuple[str, ...] = ()
        self._raw_pending: dict[str, tuple[str, str]] = {}
        self._raw_stored: set[str] = set()
        self._keep_raw(request.finding, request.raw_packed)
        self._delivery_ids: set[str] = {request.delivery_id}
        self._notifying: asyncio.Future | None = None

    # --- what analysts and tools see ---

    @workflow.query
    def current_state(self) -> IncidentState:
        return self.state

    # Every decision has two doors behind one path: an update (the CLI gets an answer; a refused update
    # is rejected by its validator and leaves no trace in history) and a signal (the Temporal UI's "send
    # signal"; a refused signal is recorded as refused and changes nothing).

    @workflow.signal(name="approve")
    def approve_signal(self, request: dict[str, Any]) -> None:
        self._decide(DecisionKind.APPROVE, request, via="signal")

    @workflow.signal(name="reject")
    def reject_signal(self, request: dict[str, Any]) -> None:
        self._decide(DecisionKind.REJECT, request, via="signal")

    @workflow.signal(name="release")
    def release_signal(self, request: dict[str, Any]) -> None:
        self._decide(DecisionKind.RELEASE, request, via="signal")

    @workflow.signal(name="note")
    def note_signal(self, request: dict[str, Any]) -> None:
        self._decide(DecisionKind.NOTE, request, via="signal")

    @workflow.update(name="approve")
    def approve_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self._decide(DecisionKind.APPROVE, request, via="update")

    @approve_update.validator
    def _validate_approve(self, request: dict[str, Any]) -> None:
        self._validate(DecisionKind.APPROVE, request)

    @workflow.update(name="reject")
    def reject_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self._decide(DecisionKind.REJECT, request, via="update")

    @reject_update.validator
    def _validate_reject(self, request: dict[str, Any]) -> None:
        self._validate(DecisionKind.REJECT, request)

    @workflow.update(name="release")
    def release_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self._decide(DecisionKind.RELEASE, request, via="update")

    @release_update.validator
    def _validate_release(self, request: dict[str, Any]) -> None:
        self._validate(DecisionKind.RELEASE, request)

    @workflow.update(name="note")
    def note_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self._decide(DecisionKind.NOTE, request, via="update")

    @note_update.validator
    def _validate_note(self, request: dict[str, Any]) -> None:
        self._validate(DecisionKind.NOTE, request)

    @workflow.signal
    def add_finding(self, delivery: FindingDelivery) -> None:
        """A finding (new, repeated or re-published) about the same resource joins this incident."""
        if delivery.delivery_id in self._delivery_ids:
            return  # the same message delivered again (SQS is at-least-once): already counted
        if len(self._delivery_ids) < MAX_REMEMBERED_DELIVERIES:
            self._delivery_ids.add(delivery.delivery_id)
        self.state.finding_deliveries += 1
        finding = delivery.finding
        self._keep_raw(finding, delivery.raw_packed)
        seen = {(f.id, f.updated_at, f.count) for f in self.state.findings_absorbed}
        if (finding.id, finding.updated_at, finding.count) in seen:
            return
        self.state.findings_absorbed.append(finding)
        self.state.severity = incident_severity(self.state.findings_absorbed)
        self.note(f"finding joined: {finding.type} ({finding.id}, count {finding.count}, {finding.severity})")
        self._publish()

    def _keep_raw(self, finding: Finding, packed: str | None) -> None:
        if packed and finding.raw_sha256 not in self._raw_stored and finding.raw_sha256 not in self._raw_pending:
            self._raw_pending[finding.raw_sha256] = (finding.id, packed)

    async def store_raw_findings(self) -> None:
        """Each distinct original record becomes an exhibit (first at the evidence phase, then at closing)."""
        pending, self._raw_pending = self._raw_pending, {}
        requests = [
            RawFindingInput(
                incident_id=self.state.incident_id, finding_id=finding_id, raw_packed=packed, raw_sha256=sha
            )
            for sha, (finding_id, packed) in pending.items()
        ]
        stored = await asyncio.gather(*(self.try_act("store_raw_finding", r, EvidenceObject, QUICK) for r in requests))
        for request, evidence in zip(requests, stored, strict=True):
            if evidence is not None:
                self._raw_stored.add(request.raw_sha256)
                self.add_evidence(evidence)

    # --- the lifecycle ---

    @workflow.run
    async def run(self, request: IncidentInput) -> IncidentState:
        playbook = PLAYBOOKS[request.playbook](self)
        self.note(f"incident opened: {request.finding.type} on {self.state.resource_id}")
        self._publish()
        try:
            return await self._lifecycle(playbook)
        except asyncio.CancelledError:
            # A cancel is not a verdict: containment stays in place; only an analyst's reject undoes it.
            self.note("incident cancelled by request; containment (if any) left in place")
            await asyncio.shield(asyncio.ensure_future(self._finish(Status.FAILED, "cancelled by request")))
            raise

    async def _lifecycle(self, playbook: Playbook) -> IncidentState:
        await self.enter(Phase.DETECTION, f"{self.state.finding.type} on {self.state.resource_id}")
        try:
            plan = await playbook.analyse()
        except ActivityError as error:
            return await self._finish(Status.FAILED, f"detection & analysis failed: {error_text(error)}", fail=True)
        self.state.severity = plan.severity
        self.state.containment_requires_approval = plan.requires_approval
        self.state.plan_reasons = plan.reasons
        self._publish()
        if not playbook.contains:
            return await self._triage(playbook)

        if plan.requires_approval:
            decision = await self._await_decision("containment", f"Contain {self.state.resource_id}?")
            if decision.kind == DecisionKind.REJECT:
                return await self._finish(Status.ROLLED_BACK, f"rejected before containment by {decision.by}")

        await self.enter(Phase.CONTAINMENT)
        try:
            await playbook.contain(self.saga)
        except ActivityError as error:
            vanished = error_type(error) == NOT_FOUND
            reason = f"containment failed: {error_text(error)}"
            await self._compensate(reason)
            await self._notify("escalation", f"irflow: containment FAILED for {self.state.resource_id}", reason)
            return await self._finish(Status.FAILED if vanished else Status.ROLLED_BACK, reason, fail=True)
        self.state.contained_at = workflow.now()
        self.note("contained")

        await self.enter(Phase.EVIDENCE, "containment complete; collecting evidence")
        await asyncio.gather(playbook.collect_evidence(), self.store_raw_findings())
        await self._write_manifest()

        decision = await self._await_decision(
            "eradication",
            f"{self.state.resource_id} is contained. Approve eradication, reject as a false positive, or "
            "release it (real, but recovered: containment is lifted)?",
        )
        if decision.kind == DecisionKind.REJECT:
            await self._compensate(f"rejected as a false positive by {decision.by}")
            return await self._finish(Status.ROLLED_BACK, None)
        if decision.kind == DecisionKind.RELEASE:
            await self.enter(Phase.ERADICATION, f"released by {decision.by}: containment is lifted")
            await self._compensate(f"released by {decision.by} after recovery")
            self.state.recovered_at = workflow.now()
            return await self._finish(Status.RESOLVED, f"released after recovery by {decision.by}")

        await self.enter(Phase.ERADICATION)
        choice = decision.eradication or self.request.policy.default_eradication
        self.state.eradication = choice
        try:
            await playbook.eradicate(choice)
        except ActivityError as error:
            reason = f"eradication ({choice}) failed: {error_text(error)}; the resource stays contained"
            await self._notify("escalation", f"irflow: eradication FAILED for {self.state.resource_id}", reason)
            return await self._finish(Status.FAILED, reason, fail=True)
        self.state.recovered_at = workflow.now()
        return await self._finish(Status.RESOLVED, None)

    async def _triage(self, playbook: Playbook) -> IncidentState:
        """No automated containment: evidence, a notification, and an analyst's call."""
        self.note("triage only: no automated containment for this resource")
        await self.enter(Phase.EVIDENCE, "triage only: collecting evidence, nothing is changed")
        await asyncio.gather(playbook.collect_evidence(), self.store_raw_findings())
        await self._write_manifest()
        decision = await self._await_decision(
            "triage",
            f"irflow does not contain {self.state.finding.resource.resource_type} {self.state.resource_id} "
            "automatically. Handle it, then approve to close, or reject as a false positive.",
        )
        if decision.kind == DecisionKind.REJECT:
            return await self._finish(Status.ROLLED_BACK, None)
        return await self._finish(Status.RESOLVED, None)

    # --- helpers the playbooks use ---

    def note(self, event: str) -> None:
        self.state.timeline.append(TimelineEntry(at=workflow.now(), phase=self.state.phase, event=event))

    async def enter(self, phase: Phase, message: str = "", subject: str | None = None) -> None:
        """A phase change: recorded, published to the UI and search attributes, and one SNS message."""
        self.state.phase = phase
        self.note(f"phase: {phase}" + (f" — {message}" if message else ""))
        self._publish()
        subject = subject or f"irflow: {self.state.resource_id} → {phase}"
        await self._notify("team", subject, message or f"phase {phase}")

    async def act(self, name: str, argument: Any, result_type: type, options: dict) -> Any:
        """Run one activity and record it as an action; a failure is recorded, then re-raised."""
        started = workflow.now()
        try:
            result = await workflow.execute_activity(name, argument, result_type=result_type, **options)
        except ActivityError as error:
            self._record(name, ActionStatus.FAILED, started, error=error_text(error))
            self.note(f"{name} failed: {error_text(error)}")
            self._publish()
            raise
        self._record(name, ActionStatus.DONE, started, result=_summarise(result))
        self._publish()
        return result

    def _record(self, name: str, status: ActionStatus, started, result=None, error: str | None = None) -> None:
        self.state.actions.append(
            ActionRecord(
                name=name,
                phase=self.state.phase,
                status=status,
                started_at=started,
                finished_at=workflow.now(),
                result=result or {},
                error=error,
            )
        )

    async def try_act(self, name: str, argument: Any, result_type: type, options: dict) -> Any | None:
        """Like `act`, for steps whose failure must not stop the incident (evidence, notifications)."""
        try:
            return await self.act(name, argument, result_type, options)
        except ActivityError:
            return None

    def add_evidence(self, *objects: EvidenceObject) -> None:
        known = {(e.key, e.version_id) for e in self.state.evidence}
        self.state.evidence.extend(o for o in objects if (o.key, o.version_id) not in known)

    # --- decisions ---

    def _check(self, kind: DecisionKind, raw: Any) -> tuple[Any, str | None]:
        """(the request, why it is refused or None): the one rule book behind updates and signals."""
        return decision_refusal(
            kind,
            raw,
            self.request.policy,
            self.state.pending_decision,
            self.state.findings_absorbed,
            decided=self._decision is not None,
            phase=str(self.state.phase),
        )

    def _validate(self, kind: DecisionKind, raw: Any) -> None:
        _, refusal = self._check(kind, raw)
        if refusal:
            raise ValueError(refusal)

    def _decide(self, kind: DecisionKind, raw: Any, via: str) -> DecisionOutcome:
        now = workflow.now()
        pending = self.state.pending_decision
        stage = pending.kind if pending else None
        request, refusal = self._check(kind, raw)
        if refusal:
            by = request.by if request else (str(raw.get("by", "")) if isinstance(raw, dict) else "") or "?"
            self.state.decisions.append(
                Decision(kind=kind, by=by, at=now, via=via, stage=stage, accepted=False, refusal=refusal)
            )
            self.note(f"{kind} by {by} refused: {refusal}")
            return DecisionOutcome(accepted=False, kind=kind, stage=stage, message=refusal)
        if kind == DecisionKind.NOTE:
            self.state.decisions.append(Decision(kind=kind, by=request.by, at=now, comment=request.text, via=via))
            self.note(f"note by {request.by}: {request.text}")
            return DecisionOutcome(accepted=True, kind=kind, stage=stage, message="note recorded")
        comment = request.reason if kind == DecisionKind.REJECT else request.comment
        eradication = request.eradication if kind == DecisionKind.APPROVE else None
        decision = Decision(
            kind=kind, by=request.by, at=now, comment=comment, eradication=eradication, via=via, stage=stage
        )
        self.state.decisions.append(decision)
        if kind == DecisionKind.APPROVE:
            pending.approvals.append(request.by)
            if len(pending.approvals) < pending.approvals_required:
                message = (
                    f"approval {len(pending.approvals)} of {pending.approvals_required} by {request.by}: "
                    "waiting for a second, different approver"
                )
                self.note(message)
                return DecisionOutcome(
                    accepted=True,
                    kind=kind,
                    stage=stage,
                    message=message,
                    approvals=list(pending.approvals),
                    approvals_required=pending.approvals_required,
                )
            decision = decision.model_copy(update={"eradication": eradication_choice(self._stage_approvals(stage))})
        self._decision = decision
        self.note(f"{kind} by {request.by} via {via}: {comment or '—'}")
        return DecisionOutcome(
            accepted=True,
            kind=kind,
            stage=stage,
            message=f"{kind} accepted",
            approvals=list(pending.approvals),
            approvals_required=pending.approvals_required,
        )

    def _stage_approvals(self, stage) -> list[Decision]:
        since = self.state.pending_decision.since if self.state.pending_decision else None
        return [
            d
            for d in self.state.decisions
            if d.accepted and d.kind == DecisionKind.APPROVE and d.stage == stage and (since is None or d.at >= since)
        ]

    async def _await_decision(self, stage: str, question: str) -> Decision:
        policy = self.request.policy
        timeout, reminder = policy.decision_timeout, policy.decision_reminder
        now = workflow.now()
        self._decision = None
        options = ["approve", "reject"] + (["release"] if stage == "eradication" else [])
        required = approvals_required(stage, self.state.severity, policy)
        if required > 1:
            question += f" ({self.state.severity}: two different approvers must approve)"
        self.state.pending_decision = PendingDecision(
            kind=stage,
            question=question,
            options=options,
            since=now,
            deadline=now + timeout,
            approvals_required=required,
        )
        self.state.status = Status.AWAITING_DECISION
        await self.enter(
            Phase.DECISION, f"decision needed: {question}", f"irflow: decision needed for {self.state.resource_id}"
        )
        deadline = self.state.pending_decision.deadline
        while self._decision is None:
            escalated = self.state.pending_decision.escalated_at is not None
            waits = [reminder] if reminder else []
            if not escalated:
                waits.append(max(deadline - workflow.now(), timedelta(seconds=1)))
            try:
                await workflow.wait_condition(lambda: self._decision is not None, timeout=min(waits) if waits else None)
            except TimeoutError:
                if not escalated and workflow.now() >= deadline:
                    await self._escalate(stage, question, timeout)
                else:
                    await self._remind(question)
        decision = self._decision
        self.state.pending_decision = None
        self.state.decided_at = decision.at
        self.state.status = Status.ACTIVE
        self._publish()
        return decision

    async def _remind(self, question: str) -> None:
        pending = self.state.pending_decision
        pending.reminders += 1
        waited = workflow.now() - pending.since
        self.note(f"reminder {pending.reminders}: still waiting for a decision after {waited}")
        channel = "escalation" if pending.escalated_at else "team"
        await self._notify(channel, f"irflow: REMINDER, decision needed for {self.state.resource_id}", question)

    async def _escalate(self, stage: str, question: str, timeout) -> None:
        """Silence is safe: escalate, and keep (or, for whether to contain at all, apply) containment.
        Never delete, stop or terminate."""
        now = workflow.now()
        pending = self.state.pending_decision
        self.state.escalations.append(now)
        pending.escalated_at = now
        self.state.status = Status.ESCALATED
        contain = stage == "containment" and self.request.policy.timeout_action == "contain"
        outcome = "containment applied by the timeout default" if contain else "containment kept"
        self.note(f"no decision within {timeout}: escalated, {outcome}")
        self._publish()
        await self._notify(
            "escalation",
            f"irflow: ESCALATION, no decision for {self.state.resource_id}",
            f"No analyst decided within {timeout}. {outcome.capitalize()}. {question}",
        )
        if contain:
            self._decision = Decision(
                kind=DecisionKind.APPROVE,
                by="irflow",
                at=now,
                via="timeout",
                stage=stage,
                comment="IRFLOW_DECISION_TIMEOUT_ACTION=contain: nobody answered, containment applied",
            )
            self.state.decisions.append(self._decision)

    # --- compensation, closing, reporting ---

    async def _compensate(self, reason: str) -> None:
        self.note(f"compensating ({len(self.saga)} undo(s)): {reason}")
        await self.saga.compensate(self._run_undo)
        self._publish()

    async def _run_undo(self, undo: Undo) -> None:
        started = workflow.now()
        handle = workflow.start_activity(undo.activity, undo.argument, result_type=StepResult, **UNDO)
        status, result, error = ActionStatus.UNDONE, {}, None
        while True:
            try:
                result = _summarise(await asyncio.shield(handle))
                break
            except asyncio.CancelledError:
                continue  # an undo half-done is worse than a late one: finish it
            except ActivityError as failure:
                error = error_text(failure)
                status = ActionStatus.SKIPPED if error_type(failure) == NOT_FOUND else ActionStatus.UNDO_FAILED
                break
        self.state.compensations.append(
            ActionRecord(
                name=undo.activity,
                phase=self.state.phase,
                status=status,
                started_at=started,
                finished_at=workflow.now(),
                result={"undoes": undo.step, **result},
                error=error,
            )
        )
        self.note(f"undo {undo.step} via {undo.activity}: {status}")

    async def _finish(self, status: Status, reason: str | None, fail: bool = False) -> IncidentState:
        self.state.status = status
        self.state.failure_reason = reason
        self.state.pending_decision = None
        # Closed when the outcome is settled, so the report stored under Object Lock carries the time too.
        self.state.closed_at = workflow.now()
        await self.enter(Phase.REPORT, f"incident {status}" + (f": {reason}" if reason else ""))
        await asyncio.gather(self.store_raw_findings(), self._notifications_sent())  # the report shows them
        reports = await self.try_act("write_report", self.state, list[EvidenceObject], QUICK)
        if reports:
            self.add_evidence(*reports)
            self.state.report_keys = [r.key for r in reports]
        await self._write_manifest()
        await self.enter(Phase.DONE, f"incident {status}" + (f": {reason}" if reason else ""))
        await self._notifications_sent()  # every queued notification is out before the incident ends
        if fail:
            raise ApplicationError(reason or str(status), type=f"Incident{status.title().replace('_', '')}")
        return self.state

    async def _write_manifest(self) -> None:
        if not self.state.evidence:
            return
        manifest = await self.try_act(
            "write_manifest",
            ManifestInput(
                incident_id=self.state.incident_id,
                evidence=[e for e in self.state.evidence if e.kind != "manifest"],
                snapshots=self.state.snapshots,
            ),
            EvidenceObject,
            QUICK,
        )
        if manifest:
            self.add_evidence(manifest)

    async def _notify(self, channel: str, subject: str, message: str) -> None:
        """Queue an SNS message and return at once: notifications go out in order, in the background, so a
        slow or failing SNS never delays containment. `_finish` waits for the queue to drain."""
        body = {  # the state as it is now, not when the message gets sent
            "status": self.state.status,
            "phase": self.state.phase,
            "severity": self.state.severity,
            "finding_type": self.state.finding.type,
            "resource_id": self.state.resource_id,
            "message": message,
        }
        request = NotifyInput(incident_id=self.state.incident_id, channel=channel, subject=subject, body=body)
        previous = self._notifying

        async def send() -> None:
            if previous is not None:
                await previous
            await self.try_act("publish_notification", request, StepResult, QUICK)

        self._notifying = asyncio.ensure_future(send())

    async def _notifications_sent(self) -> None:
        if self._notifying is not None:
            await self._notifying

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        s = self.state
        published = (str(s.status), str(s.phase), str(s.severity))
        if published != self._published:  # each upsert is a history event: only when something changed
            self._published = published
            workflow.upsert_search_attributes(
                [
                    sa.STATUS.value_set(str(s.status)),
                    sa.PHASE.value_set(str(s.phase)),
                    sa.SEVERITY.value_set(str(s.severity)),
                    sa.FINDING_TYPE.value_set(s.finding.type),
                    sa.RESOURCE_ID.value_set(s.resource_id),
                    sa.RESOURCE_TYPE.value_set(s.finding.resource.resource_type),
                    sa.ACCOUNT.value_set(s.finding.account_id),
                ]
            )
        waiting = f"**Waiting for:** {s.pending_decision.question}" if s.pending_decision else ""
        last = next((a for a in reversed(s.actions) if a.name != "publish_notification"), None)
        workflow.set_current_details(
            "\n".join(
                line
                for line in (
                    f"**Phase:** {s.phase} · **Status:** {s.status} · **Severity:** {s.severity}",
                    waiting,
                    f"**Last action:** {last.name} ({last.status})" if last else "",
                    f"**Failure:** {s.failure_reason}" if s.failure_reason else "",
                )
                if line
            )
        )


def _summarise(result: Any) -> dict[str, Any]:
    if isinstance(result, StepResult):
        return {"changed": result.changed, **result.detail}
    if isinstance(result, list):
        return {"items": [_summarise(r) for r in result]}
    if hasattr(result, "model_dump"):
        return result.model_dump(mode="json")
    return {"value": result}
