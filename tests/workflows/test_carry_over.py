"""What an incident carries to its next run (workflows.carry_over): through the data converter and back, a contained
IAM user incident's next run holds the same undo stack (each undo with the prior state it restores), the same steps
to re-check, the playbook's target and context, the pending question, the guard's memory and the policy; findings
arrive as a summary with the latest few kept whole, and the timeline's notes of joining findings thinned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.contrib.pydantic import pydantic_data_converter

from irflow.devstack.demo import sample_access_key_finding
from irflow.models.carry_over import CarriedRecord
from irflow.models.finding import parse_guardduty
from irflow.models.iam import AccessKeyState, IamUserContext, IamUserStepInput
from irflow.models.incident import (
    Decision,
    DecisionKind,
    IncidentInput,
    PendingDecision,
    Phase,
    ResponsePolicy,
    TimelineEntry,
)
from workflows.carry_over import TIMELINE_JOINS_KEPT, CarryOver, thinned
from workflows.closing import SourceFindings
from workflows.decisions import DecisionDesk
from workflows.guard import ContainmentGuard
from workflows.iam_user_playbook import IAM_USER_CONTAINMENT_STEPS, IamUserPlaybook
from workflows.notifications import Notifier
from workflows.record import IncidentRecord

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def finding(count: int = 1, user: str = "build-bot", severity: float = 8.0):
    event = sample_access_key_finding(user, "AKIAEXAMPLEKEY000001", "111122223333", severity=severity)
    event["detail"]["service"]["count"] = count
    return parse_guardduty(event).finding


def incident(request: IncidentInput):
    """The workflow's parts, as IncidentWorkflow puts them together."""
    record = IncidentRecord(request)
    notifier = Notifier(record)
    desk = DecisionDesk(record, notifier, lambda *_: None)
    guard = ContainmentGuard(record, notifier)
    playbook = IamUserPlaybook(record)
    carry = CarryOver(request, record, desk, guard, notifier, SourceFindings(record))
    carry.playbook = playbook
    return carry


def contained(carry: CarryOver) -> None:
    """A contained incident waiting for its verdict, three findings in, two proofs used, one of two approvals."""
    record, playbook = carry.record, carry.playbook
    record.restore(CarriedRecord(policy=ResponsePolicy(decision_timeout=timedelta(1)).model_dump(mode="json")))
    context = IamUserContext(
        user_name="build-bot",
        user_arn="arn:aws:iam::111122223333:user/build-bot",
        user_id="AIDAEXAMPLE",
        access_keys=[AccessKeyState(access_key_id="AKIAEXAMPLEKEY000001", status="Active")],
        captured_at=AT,
    )
    playbook.context = context
    step_input = IamUserStepInput(target=playbook.target, prior=context, issued_before=AT)
    for step in IAM_USER_CONTAINMENT_STEPS:
        playbook._register(step, step_input)
    state = record.state
    state.findings_absorbed += [finding(2), finding(3)]
    state.phase = Phase.DECISION
    state.contained_at = AT
    state.pending_decision = PendingDecision(
        kind="eradication",
        question="approve?",
        options=["approve", "reject", "release"],
        since=AT,
        deadline=AT + timedelta(hours=4),
        next_reminder_at=AT + timedelta(hours=1),
        approvals=["alice"],
        approvals_required=2,
    )
    state.decisions.append(Decision(kind=DecisionKind.APPROVE, by="alice", at=AT, stage="eradication"))
    state.timeline = [TimelineEntry(at=AT, phase=Phase.DECISION, event=f"finding joined: {n}") for n in range(100)]
    record.guarded = ["iam-user:111122223333:build-bot"]
    carry.desk.used_proofs.update({"proof-1", "proof-2"})
    carry.guard.playbook = playbook
    carry.guard._unrepaired = {"deactivate_access_key"}
    carry.guard._joined = [finding(4)]


def test_the_next_run_holds_what_the_last_one_left():
    first = finding()
    request = IncidentInput(
        incident_id="iam-user-1", playbook=IamUserPlaybook.name, finding=first, delivery_id="d-1", received_at=AT
    )
    before = incident(request)
    contained(before)
    carried = before.carried()

    payload = pydantic_data_converter.payload_converter.to_payloads([request.model_copy(update={"carried": carried})])
    (arrived,) = pydantic_data_converter.payload_converter.from_payloads(payload, [IncidentInput])
    assert arrived.carried == carried
    after = incident(arrived)
    after.restore(arrived.carried, IamUserPlaybook(after.record))

    state, old = after.record.state, before.record.state
    assert state.pending_decision == old.pending_decision, "the same question, deadline, reminder and approval"
    assert state.decisions == old.decisions and state.contained_at == AT
    assert state.findings_summary.absorbed == 3 and state.findings_summary.runs == 2
    assert after.record.policy.decision_timeout == timedelta(days=1), "the policy it started under, not reloaded"
    assert after.record.guarded == ["iam-user:111122223333:build-bot"]
    assert [(u.step, u.activity, u.argument) for u in after.record.saga.undos] == [
        (u.step, u.activity, u.argument) for u in before.record.saga.undos
    ]
    assert len(after.record.saga) == 3
    assert [(s, a) for s, a in after.playbook.applied] == before.playbook.applied
    assert after.playbook.context == before.playbook.context and after.playbook.target == before.playbook.target
    assert after.guard._unrepaired == {"deactivate_access_key"} and [f.count for f in after.guard._joined] == [4]
    assert after.desk.used_proofs == {"proof-1", "proof-2"}
    assert len(state.timeline) == 2 * TIMELINE_JOINS_KEPT + 1
    assert "60 more findings joined" in state.timeline[TIMELINE_JOINS_KEPT].event


def test_a_short_timeline_is_left_as_it_is():
    timeline = [TimelineEntry(at=AT, phase=Phase.DECISION, event=f"finding joined: {n}") for n in range(40)]
    assert thinned(timeline) == timeline
