"""The instance's part of memory capture, played in moto: moto records an SSM command but no instance runs it.

`fake_ssm_agent` answers the capture document as the real agent would after running it: it stores the image in the
folder the command names (`<prefix>memory.lime`, its digest in the object's metadata, the bucket's default
encryption and retention applying) and prints the `sha256sum` line. Options make it misbehave the ways a real
instance can: never answer, upload nothing, or store other bytes than it hashed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

import boto3
from moto.ssm.models import SimpleSystemManagerBackend

from activities.memory_document import CAPTURE_MEMORY_DOCUMENT


@dataclass
class FakeAgent:
    image: bytes
    status: str = "Success"
    store: bool = True
    stored_bytes: bytes | None = None  # what lands in S3 when it differs from what was hashed
    commands: list = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()

    def run(self, command) -> None:
        bucket, folder = command.parameters["bucket"][0], command.parameters["prefix"][0]
        if self.store and self.status == "Success":
            boto3.client("s3", region_name=command.backend_region).put_object(
                Bucket=bucket,
                Key=f"{folder}memory.lime",
                Body=self.stored_bytes if self.stored_bytes is not None else self.image,
                Metadata={"sha256": self.sha256},
            )
        for invocation in command.invocations:
            invocation["Status"] = invocation["StatusDetails"] = self.status
            if self.status == "Success":
                invocation["StandardOutputContent"] = f"{self.sha256}  /tmp/irflow-memory.lime\n"
        self.commands.append(command)


@contextmanager
def fake_ssm_agent(image: bytes | None = None, **behaviour) -> Iterator[FakeAgent]:
    """While inside, every capture command sent (in-process moto) is answered by a FakeAgent."""
    agent = FakeAgent(image=image if image is not None else os.urandom(3 * 1024 * 1024 + 17), **behaviour)
    original = SimpleSystemManagerBackend.send_command

    def send_command(self, *args, **kwargs):
        command = original(self, *args, **kwargs)
        if command.document_name == CAPTURE_MEMORY_DOCUMENT:
            agent.run(command)
        return command

    with mock.patch.object(SimpleSystemManagerBackend, "send_command", send_command):
        yield agent
