"""IncidentState's milestones and metrics: the first observation over every finding absorbed, the first
decision told from the final one, each a function of the record alone (a record built by hand)."""

from __future__ import annotations

from datetime import datetime, timedelta

from activities.report import report_document
from irflow.models.incident import Decision, DecisionKind, IncidentState
from tests.activities.report_support import DECIDED_AT, FINDING_AT, RECEIVED_AT, _state


def _finding_seen(first_seen: datetime | None, finding_id: str):
    base = _state().finding
    return base.model_copy(update={"id": finding_id, "first_seen": first_seen})


def test_first_observation_is_the_earliest_sighting_over_every_finding_absorbed():
    later = _finding_seen(FINDING_AT - timedelta(minutes=2), "later")
    earlier = _finding_seen(FINDING_AT - timedelta(hours=1), "earlier")
    state = _state(finding=later, findings_absorbed=[later, earlier])
    assert state.milestones()["first_observed"] == FINDING_AT - timedelta(hours=1)
    assert state.metrics()["observed_to_detected_s"] == 3630.0
    assert report_document(state)["milestones"]["first_observed"] == (FINDING_AT - timedelta(hours=1)).isoformat()


def test_first_observation_falls_back_to_the_findings_creation_time():
    unseen = _finding_seen(None, "no-first-seen")
    state = _state(finding=unseen, findings_absorbed=[unseen])
    assert state.milestones()["first_observed"] == unseen.created_at
    assert state.metrics()["observed_to_detected_s"] == (RECEIVED_AT - unseen.created_at).total_seconds()


def test_metrics_tell_the_first_decision_from_the_final_one_and_ignore_refusals_and_notes():
    approval_at = RECEIVED_AT + timedelta(seconds=10)
    decisions = [
        Decision(
            kind=DecisionKind.APPROVE,
            by="eve",
            at=RECEIVED_AT + timedelta(seconds=1),
            accepted=False,
            refusal="no decision is pending",
        ),
        Decision(kind=DecisionKind.NOTE, by="carol", at=RECEIVED_AT + timedelta(seconds=2), comment="looking"),
        Decision(kind=DecisionKind.APPROVE, by="dave", at=approval_at, stage="containment"),
        Decision(kind=DecisionKind.APPROVE, by="alice", at=DECIDED_AT, stage="eradication"),
    ]
    recovered = DECIDED_AT + timedelta(seconds=30)
    closed = recovered + timedelta(seconds=5)
    state = _state(decisions=decisions, recovered_at=recovered, closed_at=closed)
    milestones = state.milestones()
    assert milestones["first_decision"] == approval_at and milestones["decided"] == DECIDED_AT
    metrics = state.metrics()
    assert metrics["detected_to_first_decision_s"] == 10.0
    assert metrics["detected_to_decided_s"] == 1200.0
    assert metrics["observed_to_first_decision_s"] == 400.0
    assert metrics["observed_to_decided_s"] == 1590.0
    assert metrics["observed_to_recovered_s"] == 1620.0
    assert metrics["observed_to_closed_s"] == 1625.0
    assert metrics["contained_to_decided_s"] == 1157.5
    assert metrics["decided_to_recovered_s"] == 30.0
    assert metrics["detected_to_closed_s"] == 1235.0


def test_metrics_keep_the_keys_existing_callers_read():
    metrics = _state(recovered_at=DECIDED_AT + timedelta(seconds=30)).metrics()
    assert {
        "observed_to_detected_s",
        "detected_to_contained_s",
        "observed_to_contained_s",
        "detected_to_decided_s",
        "detected_to_recovered_s",
    } <= set(metrics)
    assert metrics["detected_to_recovered_s"] == 1230.0


def test_metrics_are_a_function_of_the_record_alone():
    state = _state()
    again = IncidentState.model_validate_json(state.model_dump_json())
    assert state.metrics() == again.metrics() and state.milestones() == again.milestones()
