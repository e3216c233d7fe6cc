"""What the incident's record keeps of an activity's result and of a failure. (The record in a running
incident, with its search attributes and timeline, is tested through tests/workflows/test_incident.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from irflow.intake.router import incident_id, route
from irflow.models.asff import parse_asff
from irflow.models.errors import NOT_FOUND
from irflow.models.evidence import SnapshotEvidence
from irflow.models.incident import IncidentInput, StepResult
from irflow.visibility import identity_hash
from workflows import search_attributes as sa
from workflows.record import IncidentRecord, error_text, error_type, summarise


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


# --- how the incident shows itself ---

ROLE_ARN = "arn:aws:iam::123456789012:role/alice-smith-admin"


def _role_incident() -> tuple[IncidentInput, str]:
    """A triage incident about an IAM role a Security Hub finding names by its ARN (not one of the finding's
    identities: only the router knows it names a principal), as `submit` hands it to the workflow."""
    record = {
        "SchemaVersion": "2018-10-08",
        "Id": "arn:aws:securityhub:us-east-1:123456789012:finding/decoy-role-1",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "GeneratorId": "irflow-test",
        "AwsAccountId": "123456789012",
        "Types": ["Unusual Behaviors"],
        "CreatedAt": "2026-01-05T10:00:00Z",
        "UpdatedAt": "2026-01-05T10:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "A decoy role was assumed",
        "Description": "A decoy role was assumed.",
        "Resources": [{"Type": "AwsIamRole", "Id": ROLE_ARN, "Partition": "aws", "Region": "us-east-1"}],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }
    finding = parse_asff(record).finding
    destination = route(finding)
    opened = datetime(2026, 12, 7, tzinfo=UTC)
    request = IncidentInput(
        incident_id=incident_id(destination.incident_key, opened),
        playbook=destination.playbook,
        finding=finding,
        resource_id=destination.resource_id,
        shown_resource_id=destination.shown_id,
        received_at=opened,
    )
    return request, destination.shown_id


def test_publish_shows_the_resource_as_the_router_decided(monkeypatch):
    request, shown = _role_incident()
    assert shown == identity_hash(ROLE_ARN)
    upserts, details = [], []
    monkeypatch.setattr(workflow, "upsert_search_attributes", upserts.append)
    monkeypatch.setattr(workflow, "set_current_details", details.append)
    record = IncidentRecord(request)
    record.state.failure_reason = f"could not contain {ROLE_ARN}"
    record.publish()
    [updates] = upserts
    assert {u.key: u.value for u in updates}[sa.RESOURCE_ID] == shown
    [text] = details
    assert f"could not contain {shown}" in text and "alice-smith-admin" not in text, text
