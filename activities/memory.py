"""Memory acquisition through SSM Run Command: send once, record how it ended, hash the image the instance stored."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from activities.aws import aws_activity, client, error_code, error_message, heartbeat
from activities.ec2_context import instance_profile_state
from activities.evidence import (
    EVIDENCE_WRITE_ACTIONS,
    checked_identifier,
    evidence_prefix,
    head_or_none,
    require_evidence_bucket,
    store_evidence,
    to_json_bytes,
)
from activities.memory_image import IMAGE_NAME, IMAGE_READ_ACTIONS, printed_digest, record_image
from irflow.models.ec2 import Ec2Target
from irflow.models.evidence import MemoryCaptureResult
from irflow.models.identifiers import BUCKET_NAME, INCIDENT_ID, INSTANCE_ID, MEMORY_PREFIX, MEMORY_UPLOADER
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


def quarantine_uploader(target: Ec2Target) -> tuple[str | None, str]:
    """(`<role id>:<instance id>`, "") for the role the instance holds now, as IAM's `aws:userid` names its
    session: the only folder its profile lets it write; (None, why) when it holds no role."""
    profile = instance_profile_state(target)
    if profile is None:
        return None, "the instance has no instance profile: its SSM agent has no credentials to upload with"
    if not profile.role_ids:
        return None, (
            f"instance profile {profile.profile_name} holds no role: the SSM agent has no credentials to upload with"
        )
    return checked_identifier(MEMORY_UPLOADER, f"{profile.role_ids[0]}:{target.instance_id}"), ""


def capture_parameters(target: Ec2Target, uploader: str) -> dict[str, list[str]]:
    """The capture document's parameters for this incident, each checked before anything is sent (SSM checks
    them again against the document's allowedPattern): the evidence bucket and the image's folder (whose pattern
    holds the incident id's and the instance id's)."""
    bucket = checked_identifier(BUCKET_NAME, get_settings().evidence_bucket)
    folder = checked_identifier(MEMORY_PREFIX, f"{evidence_prefix(target.incident_id)}memory/{uploader}/")
    return {"bucket": [bucket], "prefix": [folder]}


_WHY_NOT = {
    "Undeliverable": "the instance's SSM agent never took the command (no route to SSM: isolated without forensic "
    "egress, or not managed by SSM)",
    "TimedOut": "the capture did not finish in time",
    "Failed": "the capture command failed on the instance",
    "Cancelled": "the capture command was cancelled",
    "Terminated": "the capture command was terminated",
    "InvalidPlatform": "the instance is not Linux: the capture document runs on Linux only",
    "AccessDenied": "SSM refused the command",
}


@aws_activity(
    "ssm:SendCommand",
    "ssm:ListCommands",
    "ssm:GetCommandInvocation",
    "ec2:DescribeIamInstanceProfileAssociations",
    "iam:GetInstanceProfile",
    *EVIDENCE_WRITE_ACTIONS,
    *IMAGE_READ_ACTIONS,
)
def acquire_memory(target: Ec2Target) -> MemoryCaptureResult:
    """Have the instance image its memory (AVML, through the capture document) into its folder of the incident's
    evidence, then hash what it stored; never fail the incident over it.

    The command is the capture document (IRFLOW_MEMORY_CAPTURE_DOCUMENT, activities/memory_document.py) with
    the bucket and the image's folder as its parameters: no value is pasted into shell text. A value that is not a
    valid bucket name or folder is refused (InvalidRequest, not retried) before anything is sent. When there is no
    image, the result says exactly why (the report prints it): memory not captured is never shown as captured.
    """
    settings, s3 = require_evidence_bucket()  # a memory image with nowhere locked to go is not evidence
    tool = "avml" if any(line.lstrip().startswith("avml") for line in settings.memory_capture_commands) else "custom"
    checked_identifier(INCIDENT_ID, target.incident_id)
    checked_identifier(INSTANCE_ID, target.instance_id)
    ssm = client("ssm", target.region, target.account_id)
    comment = memory_command_comment(target.incident_id)
    command_id = _find_sent_command(ssm, target, comment)
    uploader, reason = quarantine_uploader(target)
    parameters = capture_parameters(target, uploader) if uploader else {}
    status, detail, stdout = ("Pending", "", "") if uploader else ("NotSent", reason, "")
    if command_id is None and uploader:
        try:
            sent = ssm.send_command(
                InstanceIds=[target.instance_id],
                DocumentName=settings.memory_capture_document,
                Parameters=parameters,
                Comment=comment,
                TimeoutSeconds=max(30, settings.memory_capture_wait_seconds),
                OutputS3BucketName=settings.evidence_bucket,
                OutputS3KeyPrefix=f"{parameters['prefix'][0]}ssm-output",
            )
            command_id = sent["Command"]["CommandId"]
        except ClientError as error:
            code = error_code(error)
            if code not in ("InvalidInstanceId", "UnsupportedPlatformType", "InvalidDocument", "AccessDeniedException"):
                raise
            status, detail = "NotSent", f"{code}: {error_message(error)}"
            reason = f"SSM did not send the capture command ({code})"
    if command_id is not None:
        status, detail, stdout = _wait_for_invocation(
            ssm, command_id, target.instance_id, settings.memory_capture_wait_seconds
        )
    image, agent_sha256 = None, printed_digest(stdout)
    if status == "Success" and uploader:
        key = f"{parameters['prefix'][0]}{IMAGE_NAME}"
        head = head_or_none(s3, settings.evidence_bucket, key)
        if head is None:
            reason = f"SSM reported Success but the instance stored no image at {key}"
        else:
            image = record_image(settings, s3, key, head, f"{uploader} through SSM command {command_id}")
            agent_sha256 = agent_sha256 or head.get("Metadata", {}).get("sha256")
            if agent_sha256 and agent_sha256 != image.sha256:
                reason = f"the image stored hashes to {image.sha256}, the instance printed {agent_sha256}"
    elif not reason:
        reason = _WHY_NOT.get(status, f"the capture command ended {status}")
    record = {
        "recorded_at": datetime.now(UTC).isoformat(),
        "instance_id": target.instance_id,
        "document": settings.memory_capture_document,
        "tool": tool,
        "parameters": parameters,
        "command_id": command_id,
        "status": status,
        "status_detail": detail,
        "stdout_tail": stdout,
        "image": image.model_dump(mode="json") if image else None,
        "instance_sha256": agent_sha256 or None,
        "why_not": reason or None,
    }
    evidence = store_evidence(
        target.incident_id,
        f"instance/{target.instance_id}/memory-acquisition.json",
        to_json_bytes(record),
        "memory-acquisition",
        first_capture_wins=False,
    )
    return MemoryCaptureResult(
        tool=tool,
        command_id=command_id,
        status=status,
        detail=detail,
        document=settings.memory_capture_document,
        evidence=evidence,
        image=image,
        agent_sha256=agent_sha256 or None,
        reason=reason,
    )
