"""RDS names irflow makes: the incident's snapshot identifier."""

from __future__ import annotations

import re

import pytest

from irflow.models.rds import snapshot_identifier

INCIDENT_ID = "rds-123456789012-us-east-1-demo-orders-db-20250314T092653Z"


@pytest.mark.parametrize(
    "incident_id",
    [
        INCIDENT_ID,
        "rds-123456789012-us-east-1-finding-" + "f" * 40 + "-20250314T092653Z",
        "rds-123456789012-us-east-1-a_b.c--d-20250314T092653Z",
        "x" * 400,
    ],
)
def test_snapshot_names_are_valid_rds_identifiers_and_deterministic(incident_id):
    name = snapshot_identifier(incident_id)
    assert name == snapshot_identifier(incident_id)
    assert len(name) <= 255
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name) and "--" not in name
    assert snapshot_identifier(incident_id + "x") != name
