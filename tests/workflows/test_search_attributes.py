"""The search attributes an incident carries, computed in one place for the listener (at start) and the
workflow (as it moves)."""

from __future__ import annotations

from irflow.models.incident import incident_hash, short_id
from workflows import search_attributes as sa

INCIDENT = "ec2-123456789012-us-east-1-i-0123456789abcdef0-20261207T125819Z"


def _attributes(**changes):
    values = {
        "incident_hash": incident_hash(INCIDENT),
        "status": "active",
        "phase": "detection_analysis",
        "severity": "HIGH",
        "finding_type": "Backdoor:EC2/C&CActivity.B!DNS",
        "resource_id": "i-0123456789abcdef0",
        "resource_type": "Instance",
        "account": "123456789012",
    }
    return sa.incident_attributes(**{**values, **changes})


def test_every_registered_attribute_gets_a_value():
    attributes = _attributes()
    assert {pair.key for pair in attributes} == set(sa.ALL)
    assert attributes[sa.STATUS] == "active" and attributes[sa.ACCOUNT] == "123456789012"
    assert attributes[sa.INCIDENT_HASH].startswith(short_id(INCIDENT)), "a short id is a prefix of the hash"


def test_the_workflows_upserts_carry_the_same_values():
    attributes = _attributes(status="awaiting_decision", phase="analyst_decision")
    updates = sa.as_updates(attributes)
    assert {(u.key, u.value) for u in updates} == {(pair.key, pair.value) for pair in attributes}
    assert len(updates) == len(sa.ALL)
