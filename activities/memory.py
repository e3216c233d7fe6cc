"""Memory acquisition through SSM Run Command: send once, record the command id and how it ended."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from activities.aws import aws_activity, client, error_code, heartbeat
from activities.evidence import (
    EVIDENCE_WRITE_ACTIONS,
    checked_identifier,
    evidence_prefix,
    require_evidence_bucket,
    store_evidence,
    to_json_bytes,
)
from irflow.models.ec2 import Ec2Target
from irflow.models.identifiers import BUCKET_NAME, EVIDENCE_PREFIX, INCIDENT_ID, INSTANCE_ID
from irflow.models.incident import MemoryCaptureResult
from irflow.models.settings import get_settings

_TERMINAL = {
    "Success",
    "Failed",
    "Cancelled",
    "TimedOut",
    "Undeliverable",
    "Terminated",
    "InvalidPlatform",
    "AccessDenied",
}


def memory_command_comment(incident_id: str) -> str:
    return f"irflow memory acquisition {incident_id}"[:100]


def _find_sent_command(ssm, target: Ec2Target, comment: str) -> str | None:
    for page in ssm.get_paginator("list_commands").paginate(InstanceId=target.instance_id):
        for command in page["Commands"]:
            if command.get("Comment") == comment:
                return command["CommandId"]
    return None


def _wait_for_invocation(ssm, command_id: str, instance_id: str, wait_s: int) -> tuple[str, str, str]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            status = invocation["Status"]
            if status in _TERMINAL or time.monotonic() > deadline:
                return (
                    status,
                    invocation.get("StatusDetails", ""),
                    invocation.get("StandardOutputContent", "")[-2000:],
                )
        except ClientError as error:
            if error_code(error) != "InvocationDoesNotExist" or time.monotonic() > deadline:
                raise
            status = "Pending"
        heartbeat(status)
        time.sleep(3)


def capture_parameters(target: Ec2Target) -> dict[str, list[str]]:
    """The capture document's parameters for this incident, each checked before anything is sent (SSM checks
    them again against the document's allowedPattern): the evidence bucket and the incident's prefix."""
    settings = get_settings()
    checked_identifier(INCIDENT_ID, target.incident_id)
    checked_identifier(INSTANCE_ID, target.instance_id)
    bucket = checked_identifier(BUCKET_NAME, settings.evidence_bucket)
    prefix = checked_identifier(EVIDENCE_PREFIX, evidence_prefix(target.incident_id))
    return {"bucket": [bucket], "prefix": [prefix]}


@aws_activity("ssm:SendCommand", "ssm:ListCommands", "ssm:GetCommandInvocation", *EVIDENCE_WRITE_ACTIONS)
def acquire_memory(target: Ec2Target) -> MemoryCaptureResult:
    """Ask the SSM agent to image memory into the evidence bucket; never fail the incident over it.

    The command is the capture document (IRFLOW_MEMORY_CAPTURE_DOCUMENT, activities/memory_document.py) with
    the bucket and the prefix as its parameters: no value is pasted into shell text. A value that is not a
    valid bucket name or evidence prefix is refused (InvalidRequest, not retried) before anything is sent.
    An instance that SSM does not manage (or that isolation cut from SSM's endpoints) is recorded as
    such: the report must say memory was not captured and why, not pretend.
    """
    settings = get_settings()
    require_evidence_bucket()  # refuse before sending: a memory image with nowhere locked to go is not evidence
    parameters = capture_parameters(target)
    prefix = parameters["prefix"][0]
    ssm = client("ssm", target.region, target.account_id)
    comment = memory_command_comment(target.incident_id)
    command_id = _find_sent_command(ssm, target, comment)
    status, detail, stdout = "Pending", "", ""
    if command_id is None:
        try:
            sent = ssm.send_command(
                InstanceIds=[target.instance_id],
                DocumentName=settings.memory_capture_document,
                Parameters=parameters,
                Comment=comment,
                TimeoutSeconds=max(30, settings.memory_capture_wait_seconds),
                OutputS3BucketName=settings.evidence_bucket,
                OutputS3KeyPrefix=f"{prefix}memory/ssm-output",
            )
            command_id = sent["Command"]["CommandId"]
        except ClientError as error:
            code = error_code(error)
            if code not in (
                "InvalidInstanceId",
                "UnsupportedPlatformType",
                "InvalidDocument",
                "AccessDeniedException",
            ):
                raise
            status, detail = "NotSent", f"{code}: {error.response.get('Error', {}).get('Message', '')}"
    if command_id is not None:
        status, detail, stdout = _wait_for_invocation(
            ssm, command_id, target.instance_id, settings.memory_capture_wait_seconds
        )
    record = {
        "recorded_at": datetime.now(UTC).isoformat(),
        "instance_id": target.instance_id,
        "document": settings.memory_capture_document,
        "parameters": parameters,
        "command_id": command_id,
        "status": status,
        "status_detail": detail,
        "stdout_tail": stdout,
    }
    evidence = store_evidence(
        target.incident_id,
        f"instance/{target.instance_id}/memory-acquisition.json",
        to_json_bytes(record),
        "memory-acquisition",
        first_capture_wins=False,
    )
    return MemoryCaptureResult(
        command_id=command_id,
        status=status,
        detail=detail,
        document=settings.memory_capture_document,
        evidence=evidence,
    )
