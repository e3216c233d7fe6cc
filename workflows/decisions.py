"""Analysts' decisions: the doors they come through and the one path behind them.

Every decision has two doors: an update (the CLI gets an answer; a refused update is rejected by its
validator and leaves no trace in history) and a signal (the Temporal UI's "send signal"; a refused signal
is recorded as refused and changes nothing). Both reach `DecisionDesk.decide`, which asks the rule book
(`workflows.policy.decision_refusal`) and records who decided what, and how.

Silence is safe: an unanswered question is re-asked (reminders) and escalated at its deadline; a timeout
never deletes, stops or terminates anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.incident import (
        Decision,
        DecisionKind,
        DecisionOutcome,
        PendingDecision,
        Phase,
        Status,
    )

from workflows.notifications import Notifier
from workflows.policy import approvals_required, decision_refusal, eradication_choice
from workflows.record import IncidentRecord

EnterPhase = Callable[[Phase, str, str | None], None]


class DecisionDesk:
    def __init__(self, record: IncidentRecord, notifier: Notifier, enter: EnterPhase) -> None:
        self.record = record
        self.notifier = notifier
        self.enter = enter
        self.decision: Decision | None = None

    # --- the one path ---

    def check(self, kind: DecisionKind, raw: Any) -> tuple[Any, str | None]:
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
        )

    def validate(self, kind: DecisionKind, raw: Any) -> None:
        _, refusal = self.check(kind, raw)
        if refusal:
            raise ValueError(refusal)

    def decide(self, kind: DecisionKind, raw: Any, via: str) -> DecisionOutcome:
        state, now = self.record.state, workflow.now()
        pending = state.pending_decision
        stage = pending.kind if pending else None
        request, refusal = self.check(kind, raw)
        if refusal:
            by = request.by if request else (str(raw.get("by", "")) if isinstance(raw, dict) else "") or "?"
            state.decisions.append(
                Decision(kind=kind, by=by, at=now, via=via, stage=stage, accepted=False, refusal=refusal)
            )
            self.record.note(f"{kind} by {by} refused: {refusal}")
            return DecisionOutcome(accepted=False, kind=kind, stage=stage, message=refusal)
        if kind == DecisionKind.NOTE:
            state.decisions.append(Decision(kind=kind, by=request.by, at=now, comment=request.text, via=via))
            self.record.note(f"note by {request.by}: {request.text}")
            return DecisionOutcome(accepted=True, kind=kind, stage=stage, message="note recorded")
        comment = request.reason if kind == DecisionKind.REJECT else request.comment
        eradication = request.eradication if kind == DecisionKind.APPROVE else None
        decision = Decision(
            kind=kind, by=request.by, at=now, comment=comment, eradication=eradication, via=via, stage=stage
        )
        state.decisions.append(decision)
        if kind == DecisionKind.APPROVE:
            pending.approvals.append(request.by)
            if len(pending.approvals) < pending.approvals_required:
                message = (
                    f"approval {len(pending.approvals)} of {pending.approvals_required} by {request.by}: "
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
        self.record.note(f"{kind} by {request.by} via {via}: {comment or '—'}")
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

    async def ask(self, stage: str, question: str) -> Decision:
        """Ask the analysts and wait for an accepted decision."""
        state, policy = self.record.state, self.record.policy
        timeout, reminder = policy.decision_timeout, policy.decision_reminder
        now = workflow.now()
        self.decision = None
        options = ["approve", "reject"] + (["release"] if stage == "eradication" else [])
        required = approvals_required(stage, state.severity, policy)
        if required > 1:
            question += f" ({state.severity}: two different approvers must approve)"
        state.pending_decision = PendingDecision(
            kind=stage,
            question=question,
            options=options,
            since=now,
            deadline=now + timeout,
            approvals_required=required,
        )
        state.status = Status.AWAITING_DECISION
        self.enter(Phase.DECISION, f"decision needed: {question}", f"irflow: decision needed for {state.resource_id}")
        deadline = state.pending_decision.deadline
        while self.decision is None:
            escalated = state.pending_decision.escalated_at is not None
            waits = [reminder] if reminder else []
            if not escalated:
                waits.append(max(deadline - workflow.now(), timedelta(seconds=1)))
            try:
                await workflow.wait_condition(lambda: self.decision is not None, timeout=min(waits) if waits else None)
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


class DecisionDoors:
    """The workflow's signal and update handlers for decisions; the workflow sets `self.desk`."""

    desk: DecisionDesk

    @workflow.signal(name="approve")
    def approve_signal(self, request: dict[str, Any]) -> None:
        self.desk.decide(DecisionKind.APPROVE, request, via="signal")

    @workflow.signal(name="reject")
    def reject_signal(self, request: dict[str, Any]) -> None:
        self.desk.decide(DecisionKind.REJECT, request, via="signal")

    @workflow.signal(name="release")
    def release_signal(self, request: dict[str, Any]) -> None:
        self.desk.decide(DecisionKind.RELEASE, request, via="signal")

    @workflow.signal(name="note")
    def note_signal(self, request: dict[str, Any]) -> None:
        self.desk.decide(DecisionKind.NOTE, request, via="signal")

    @workflow.update(name="approve")
    def approve_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self.desk.decide(DecisionKind.APPROVE, request, via="update")

    @approve_update.validator
    def _validate_approve(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.APPROVE, request)

    @workflow.update(name="reject")
    def reject_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self.desk.decide(DecisionKind.REJECT, request, via="update")

    @reject_update.validator
    def _validate_reject(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.REJECT, request)

    @workflow.update(name="release")
    def release_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self.desk.decide(DecisionKind.RELEASE, request, via="update")

    @release_update.validator
    def _validate_release(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.RELEASE, request)

    @workflow.update(name="note")
    def note_update(self, request: dict[str, Any]) -> DecisionOutcome:
        return self.desk.decide(DecisionKind.NOTE, request, via="update")

    @note_update.validator
    def _validate_note(self, request: dict[str, Any]) -> None:
        self.desk.validate(DecisionKind.NOTE, request)
