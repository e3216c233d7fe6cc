"""Memory acquisition over SSM against moto: the command is sent once, and how it ended is kept as evidence,
locked."""

from __future__ import annotations

import json

from activities.memory import acquire_memory
from tests.activities.evidence_support import (
    INCIDENT_ID,
    assert_locked_evidence,
    instance_commands,
    stored_bytes,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)


def test_acquire_memory_records_the_ssm_command_and_how_it_ended(workload, target):
    result = acquire_memory(target)
    [command] = instance_commands(workload)
    assert result.command_id == command["CommandId"]
    assert result.status == "Success"  # moto's SSM reports success at once
    record = json.loads(stored_bytes(workload, result.evidence))
    assert record["command_id"] == command["CommandId"] and record["status"] == "Success"
    assert any(
        f"s3://{workload.evidence_bucket}/incidents/{INCIDENT_ID}/" in c for c in command["Parameters"]["commands"]
    )
    assert_locked_evidence(workload, result.evidence)


def test_acquire_memory_twice_sends_one_command(workload, target):
    first = acquire_memory(target)
    second = acquire_memory(target)
    assert second.command_id == first.command_id
    assert [c["CommandId"] for c in instance_commands(workload)] == [first.command_id]
