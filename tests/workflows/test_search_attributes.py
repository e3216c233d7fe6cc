"""The search attributes an incident carries, computed in one place for the listener (at start) and the
workflow (as it moves)."""

from __future__ import annotations

from irflow.devstack.demo import sample_finding
from irflow.models.finding import parse_guardduty
from irflow.models.incident import short_id
from workflows import search_attributes as sa

INCIDENT = "ec2-123456789012-us-east-1-i-0123456789abcdef0-20261207T125819Z"


def _attributes(**changes):
    finding = parse_guardduty(sample_finding("i-0123456789abcdef0")).finding
    values = {
        "incident_id": INCIDENT,
        "finding": finding,
        "resource_id": "i-0123456789abcdef0",
        "status": "active",
        "phase": "detection_analysis",
        "severity": "HIGH",
    }
    return sa.incident_attributes(**{**values, **changes})


def test_every_registered_attribute_gets_a_value():
    attributes = _attributes()
    assert {pair.key for pair in attributes} == set(sa.ALL)
    assert attributes[sa.STATUS] == "active" and attributes[sa.ACCOUNT] == "123456789012"
    assert attributes[sa.FINDING_TYPE] == "Backdoor:EC2/C&CActivity.B!DNS"
    assert attributes[sa.RESOURCE_TYPE] == "Instance" and attributes[sa.RESOURCE_ID] == "i-0123456789abcdef0"
    assert attributes[sa.INCIDENT_HASH].startswith(short_id(INCIDENT)), "a short id is a prefix of the hash"


def test_the_workflows_upserts_carry_the_same_values():
    attributes = _attributes(status="awaiting_decision", phase="analyst_decision")
    updates = sa.as_updates(attributes)
    assert [(u.key, u.value) for u in updates] == [(pair.key, pair.value) for pair in attributes]
    assert len(updates) == len(sa.ALL)
