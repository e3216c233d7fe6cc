"""What the incident's record keeps of an activity's result and of a failure. (The record in a running
incident, with its search attributes and timeline, is tested through tests/workflows/test_incident.py.)"""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from irflow.models.errors import NOT_FOUND
from irflow.models.incident import SnapshotEvidence, StepResult
from workflows.record import error_text, error_type, summarise


def _activity_error(cause: BaseException) -> ActivityError:
    try:
        raise ActivityError(
            "activity failed",
            scheduled_event_id=5,
            started_event_id=6,
            identity="worker",
            activity_type="isolate_network",
            activity_id="3",
            retry_state=RetryState.NON_RETRYABLE_FAILURE,
        ) from cause
    except ActivityError as error:
        return error


def test_a_step_result_is_kept_as_whether_it_changed_and_its_detail():
    result = StepResult(changed=True, detail={"quarantine_groups": {"vpc-1": "sg-1"}})
    assert summarise(result) == {"changed": True, "quarantine_groups": {"vpc-1": "sg-1"}}


def test_lists_models_and_plain_values_are_kept_whole():
    snapshot = SnapshotEvidence(snapshot_id="snap-1", volume_id="vol-1", state="pending")
    assert summarise([snapshot]) == {"items": [snapshot.model_dump(mode="json")]}
    assert summarise(snapshot) == snapshot.model_dump(mode="json")
    assert summarise(snapshot)["snapshot_id"] == "snap-1" and summarise(snapshot)["started_at"] is None
    assert summarise("i-0a") == {"value": "i-0a"}


def test_a_failure_is_recorded_by_its_cause_and_its_type():
    failure = _activity_error(ApplicationError("instance i-0a does not exist", type=NOT_FOUND, non_retryable=True))
    assert error_text(failure) == f"{NOT_FOUND}: instance i-0a does not exist"
    assert error_type(failure) == NOT_FOUND
    untyped = _activity_error(RuntimeError())
    assert error_text(untyped) == "RuntimeError", "an empty message still says what failed"
    assert error_type(untyped) is None
