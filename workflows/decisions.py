"""Analysts' decisions: the doors they come through and the one path behind them.

Every decision has two doors: an update (the CLI gets an answer; a refused update is rejected by its
validator and leaves no trace in history) and a signal (the Temporal UI's "send signal"; a refused signal
is recorded as refused and changes nothing). Both reach `DecisionDesk.decide`, which asks the rule book
(`workflows.policy.decision_refusal`) and records who decided what, and how.

Who decided is proven, not claimed: a decision carries a proof (a signed sts:GetCallerIdentity request,
`irflow.models.proof`). The validator runs the cheap checks (a proof when required, bound to this decision,
fresh, never used before); the handler has the worker's activity send it to STS (`activities.identity`), then
asks the rule book again with the ARN STS verified, which is who the decision records. An update refused
after its validator (STS said no) is recorded as refused and fails.

Silence is safe: an unanswered question is re-asked (reminders) and escalated at its deadline; a timeout
never deletes, stops or terminates anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.identity import VerifyProofInput, verify_decision_proof
    from irflow.models.incident import (
        Decision,
        DecisionKind,
        DecisionOutcome,
        PendingDecision,
        Phase,
        Status,
    )
    from irflow.models.proof import VerifiedCaller

from workflows.activity_options import INTERACTIVE
from workflows.notifications import Notifier
from workflows.playbook import ContainmentPlan
from workflows.policy import approvals_required, decision_refusal, eradication_choice
from workflows.record import IncidentRecord, error_text

EnterPhase = Callable[[Phase, str, str | None], None]
DECISION_REFUSED = "DecisionRefused"


class DecisionDesk:
    def __init__(self, record: IncidentRecord, notifier: Notifier, enter: EnterPhase) -> None:
        self.record = record
        self.notifier = notifier
        self.enter = enter
        self.decision: Decision | None = None
        self.used_proofs: set[str] = set()  # every proof sent to STS, refused or not: each is good once
        self.carry: Any = None  # workflows.carry_over.CarryOver: while waiting, the incident may continue as new

    # --- the one path ---

    def check(self, kind: DecisionKind, raw: Any, caller: VerifiedCaller | None = None) -> tuple[Any, str | None]:
        """(the request, why it is refused or None): the one rule book behind updates and signals."""
        state = self.record.state
        return decision_refusal(
            kind,
            raw,
            self.record.policy,
            state.pending_decision,
            state.findings_absorbed,
            decided=self.decision is not None,
            phase=str(state.phase),
            caller=caller,
            incident_id=state.incident_id,
            used_proofs=self.used_proofs,
            now=workflow.now(),
        )

    def validate(self, kind: DecisionKind, raw: Any) -> None:
        _, refusal = self.check(kind, raw)
        if refusal:
            raise ValueError(refusal)

    async def decide(self, kind: DecisionKind, raw: Any, via: str) -> DecisionOutcome:
        request, refusal = self.check(kind, raw)
        if refusal:
            return self._refuse(kind, request.by if request else _claimed(raw), via, refusal)
        caller, proof_id = None, None
        if request.proof is not None:
            proof_id = request.proof.proof_id
            self.used_proofs.add(proof_id)  # before the await: the same proof sent twice at once is used once
            verify = VerifyProofInput(
                proof=request.proof,
                incident_id=self.record.state.incident_id,
                verb=str(kind),
                comment=request.words(),
                choice=request.choice(),
                max_age_seconds=int(self.record.policy.proof_max_age.total_seconds()),
            )
            try:
                caller = await workflow.execute_activity(verify_decision_proof, verify, **INTERACTIVE)
            except ActivityError as error:
                return self._refuse(kind, _claimed(raw), via, f"proof refused: {error_text(error)}", proof_id)
            request, refusal = self.check(kind, raw, caller)  # the moment may have passed while STS answered
            if refusal:
                return self._refuse(kind, caller.arn, via, refusal, proof_id)
        return self._accept(kind, request, caller.arn if caller else request.by, via, proof_id)

    def _refuse(self, kind: DecisionKind, by: str, via: str, refusal: str, proof_id: str | None = None):
        state = self.record.state
        stage = state.pending_decision.kind if state.pending_decision else None
        state.decisions.append(
            Decision(
                kind=kind,
                by=by or "?",
                at=workflow.now(),
                via=via,
                stage=stage,
                accepted=False,
                refusal=refusal,
                proof_id=proof_id,
            )
        )
        self.record.note(f"{kind} by {by or '?'} refused: {refusal}")
        return DecisionOutcome(accepted=False, kind=kind, stage=stage, message=refusal)

    def _accept(self, kind: DecisionKind, request: Any, by: str, via: str, proof_id: str | None) -> DecisionOutcome:
        state, now = self.record.state, workflow.now()
        pending = state.pending_decision
        stage = pending.kind if pending else None
        if kind == DecisionKind.NOTE:
            state.decisions.append(Decision(kind=kind, by=by, at=now, comment=request.text, via=via, proof_id=proof_id))
            self.record.note(f"note by {by}: {request.text}")
            return DecisionOutcome(accepted=True, kind=kind, stage=stage, message="note recorded")
        comment = request.words()
        eradication = request.eradication if kind == DecisionKind.APPROVE else None
        decision = Decision(
            kind=kind,
            by=by,
            at=now,
            comment=comment,
            eradication=eradication,
            via=via,
            stage=stage,
            proof_id=proof_id,
        )
        state.decisions.append(decision)
        if kind == DecisionKind.APPROVE:
            pending.approvals.append(by)
            if len(pending.approvals) < pending.approvals_required:
                message = (
                    f"approval {len(pending.approvals)} of {pending.approvals_required} by {by}: "
                    "waiting for a second, different approver"
                )
                self.record.note(message)
                return DecisionOutcome(
                    accepted=True,
                    kind=kind,
                    stage=stage,
                    message=message,
                    approvals=list(pending.approvals),
                    approvals_required=pending.approvals_required,
                )
            decision = decision.model_copy(update={"eradication": eradication_choice(self._stage_approvals(stage))})
        self.decision = decision
        self.record.note(f"{kind} by {by} via {via}: {comment or '—'}")
        return DecisionOutcome(
            accepted=True,
            kind=kind,
            stage=stage,
            message=f"{kind} accepted",
            approvals=list(pending.approvals),
            approvals_required=pending.approvals_required,
        )

    def _stage_approvals(self, stage) -> list[Decision]:
        state = self.record.state
        since = state.pending_decision.since if state.pending_decision else None
        return [
            d
            for d in state.decisions
            if d.accepted and d.kind == DecisionKind.APPROVE and d.stage == stage and (since is None or d.at >= since)
        ]

    # --- asking, waiting, reminding, escalating ---

    async def ask(self, stage: str, question: str, plan: ContainmentPlan | None = None) -> Decision:
        """Ask the analysts and wait for an accepted decision: from as many different approvers as the stage
        needs at this severity, or as `plan` needs (a protected subject)."""
        state, policy = self.record.state, self.record.policy
        timeout, reminder = policy.decision_timeout, policy.decision_reminder
        now = workflow.now()
        self.decision = None
        resumed = state.pending_decision is not None and state.pending_decision.kind == stage
        if not resumed:  # else asked by the run before this one (continued as new): its deadline stands
            options = ["approve", "reject"] + (["release"] if stage == "eradication" else [])
            required = max(plan.approvals_required if plan else 1, approvals_required(stage, state.severity, policy))
            if required > 1:
                why = "protected" if plan and plan.protected else state.severity
                question += f" ({why}: two different approvers must approve)"
            state.pending_decision = PendingDecision(
                kind=stage,
                question=question,
                options=options,
                since=now,
                deadline=now + timeout,
                approvals_required=required,
                next_reminder_at=now + reminder if reminder else None,
            )
            state.status = Status.AWAITING_DECISION
            note = f"decision needed: {question}"
            self.enter(Phase.DECISION, note, f"irflow: decision needed for {state.resource_id}")
        pending = state.pending_decision
        question, deadline = pending.question, pending.deadline
        switch = self.carry.due if self.carry else lambda: False
        while self.decision is None:
            escalated = pending.escalated_at is not None
            # From the reminder due (the same wait as a fixed one, and kept across runs), else every `reminder`.
            due = pending.next_reminder_at
            waits = [max(due - workflow.now(), timedelta(seconds=1)) if due else reminder] if reminder else []
            if not escalated:
                waits.append(max(deadline - workflow.now(), timedelta(seconds=1)))
            try:
                await workflow.wait_condition(
                    lambda: self.decision is not None or switch(), timeout=min(waits) if waits else None
                )
                if self.decision is None:
                    await self.carry.continue_as_new()  # returns when a decision came while it got ready
            except TimeoutError:
                if not escalated and workflow.now() >= deadline:
                    self._escalate(stage, question, timeout)
                else:
                    self._remind(question)
        decision = self.decision
        state.pending_decision = None
        state.decided_at = decision.at
        state.status = Status.ACTIVE
        self.record.publish()
        return decision

    def _remind(self, question: str) -> None:
        state = self.record.state
        pending = state.pending_decision
        pending.reminders += 1
        reminder = self.record.policy.decision_reminder
        pending.next_reminder_at = workflow.now() + reminder if reminder else None
        waited = workflow.now() - pending.since
        self.record.note(f"reminder {pending.reminders}: still waiting for a decision after {waited}")
        channel = "escalation" if pending.escalated_at else "team"
        self.notifier.notify(channel, f"irflow: REMINDER, decision needed for {state.resource_id}", question)

    def _escalate(self, stage: str, question: str, timeout: timedelta) -> None:
        """Escalate, and keep (or, for whether to contain at all, apply) containment."""
        state, now = self.record.state, workflow.now()
        pending = state.pending_decision
        state.escalations.append(now)
        pending.escalated_at = now
        reminder = self.record.policy.decision_reminder
        pending.next_reminder_at = now + reminder if reminder else None
        state.status = Status.ESCALATED
        contain = stage == "containment" and self.record.policy.timeout_action == "contain"
        outcome = "containment applied by the timeout default" if contain else "containment kept"
        self.record.note(f"no decision within {timeout}: escalated, {outcome}")
        self.record.publish()
        self.notifier.notify(
            "escalation",
            f"irflow: ESCALATION, no decision for {state.resource_id}",
            f"No analyst decided within {timeout}. {outcome.capitalize()}. {question}",
        )
        if contain:
            self.decision = Decision(
                kind=DecisionKind.APPROVE,
                by="irflow",
                at=now,
                via="timeout",
                stage=stage,
                comment="IRFLOW_DECISION_TIMEOUT_ACTION=contain: nobody answered, containment applied",
            )
            state.decisions.append(self.decision)


def _claimed(raw: Any) -> str:
    """Who a refused request says it is (for the record): the name it gave, if any."""
    return str(raw.get("by", "")) if isinstance(raw, dict) else ""


_UNFINISHED = workflow.HandlerUnfinishedPolicy.ABANDON  # a decision still at STS when the incident ends


class DecisionDoors:
    """The workflow's signal and update handlers for decisions; the workflow sets `self.desk`."""

    desk: DecisionDesk

    async def _update(self, kind: DecisionKind, request: dict[str, Any]) -> DecisionOutcome:
        outcome = await self.desk.decide(kind, request, via="update")
        if not outcome.accepted:  # refused after the validator (STS said no, or the moment passed)
            raise ApplicationError(outcome.message, type=DECISION_REFUSED, non_retryable=True)
        return outcome

    @workflow.signal(name="approve", unfinished_policy=_UNFINISHED)
    async def approve_signal(self, request: dict[str, Any]) -> None:
        await self.desk.decide(DecisionKind.APPROVE, request, via="signal")

    @workflow.signal(name="reject", unfinished_policy=_UNFINISHED)
    async def reject_signal(self, request: dict[str, Any]) -> None:
        await self.desk.decide(DecisionKind.REJECT, request, via="signal")

    @workflow.signal(name="release", unfinished_policy=_UNFINISHED)
    async def release_signal(self, request: dict[str, Any]) -> None:
        await self.desk.decide(DecisionKind.RELEASE, request, via="signal")

    @workflow.signal(name="note", unfinished_policy=_UNFINISHED)
    async def note_signal(self, request: dict[str, Any]) -> None:
        await self.desk.decide(DecisionKind.NOTE, request, via="signal")

    @workflow.update(name="approve", unfinished_policy=_UNFINISHED)
    async def approve_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return await self._update(DecisionKind.APPROVE, request)

    @approve_update.validator
    def _validate_approve(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.APPROVE, request)

    @workflow.update(name="reject", unfinished_policy=_UNFINISHED)
    async def reject_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return await self._update(DecisionKind.REJECT, request)

    @reject_update.validator
    def _validate_reject(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.REJECT, request)

    @workflow.update(name="release", unfinished_policy=_UNFINISHED)
    async def release_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return await self._update(DecisionKind.RELEASE, request)

    @release_update.validator
    def _validate_release(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.RELEASE, request)

    @workflow.update(name="note", unfinished_policy=_UNFINISHED)
    async def note_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return await self._update(DecisionKind.NOTE, request)

    @note_update.validator
    def _validate_note(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.NOTE, request)
