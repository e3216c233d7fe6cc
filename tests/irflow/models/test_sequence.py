"""An attack sequence's children as the parent records them (`IncidentState.children`): they travel in the state
through Temporal's converter as the roll-up left them, and records written before children existed still load."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter

from irflow.models.incident import IncidentState
from tests.activities.report_support import CHILDREN, _state


def test_children_travel_in_the_state_through_temporals_converter():
    state = _state(children=CHILDREN)
    [payload] = pydantic_data_converter.payload_converter.to_payloads([state])
    [back] = pydantic_data_converter.payload_converter.from_payloads([payload], [IncidentState])
    assert back.children == CHILDREN
    assert back.children[0].contained_at == CHILDREN[0].contained_at and back.children[1].joined


def test_a_record_from_before_children_loads_with_none():
    old = _state().model_dump(mode="json")
    del old["children"]
    assert IncidentState.model_validate(old).children == []
