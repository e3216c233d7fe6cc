"""An attack sequence's children as the parent records them (`IncidentState.children`): what the fan-out knows at
once, what the roll-up adds, and records written before children existed still loading."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.contrib.pydantic import pydantic_data_converter

from irflow.models.incident import IncidentState
from irflow.models.sequence import ChildIncident
from tests.activities.report_support import _state


def test_a_child_is_known_by_its_incident_and_resource_before_anyone_looks_at_it():
    child = ChildIncident(
        workflow_id="ec2-1-us-east-1-i-1",
        incident_id="ec2-1-us-east-1-i-1-x",
        resource_type="Instance",
        resource_id="i-1",
        playbook="ec2-instance",
    )
    assert (child.joined, child.status, child.time_to_contain_seconds, child.decisions) == (False, None, None, [])


def test_children_travel_in_the_state_through_temporals_converter():
    child = ChildIncident(
        workflow_id="ec2-1-us-east-1-i-1",
        incident_id="ec2-1-us-east-1-i-1-x",
        resource_type="Instance",
        resource_id="i-1",
        playbook="ec2-instance",
        joined=True,
        status="resolved",
        contained_at=datetime(2026, 3, 1, 9, 0, 42, tzinfo=UTC),
        time_to_contain_seconds=12.0,
        decisions=["approve (eradication) by alice"],
    )
    state = _state(children=[child])
    [payload] = pydantic_data_converter.payload_converter.to_payloads([state])
    [back] = pydantic_data_converter.payload_converter.from_payloads([payload], [IncidentState])
    assert back.children == [child]


def test_a_record_from_before_children_loads_with_none():
    old = _state().model_dump(mode="json")
    del old["children"]
    assert IncidentState.model_validate(old).children == []
