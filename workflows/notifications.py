"""SNS notifications of an incident: queued and sent in order in the background, so a slow or failing SNS
never delays containment; the incident waits for the queue to drain before it ends."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.notify import publish_notification
    from irflow.models.incident import NotifyInput

from workflows.activity_options import QUICK
from workflows.record import IncidentRecord


class Notifier:
    def __init__(self, record: IncidentRecord) -> None:
        self.record = record
        self._sending: asyncio.Future | None = None

    def notify(self, channel: str, subject: str, message: str) -> None:
        """Queue one message and return at once."""
        state = self.record.state
        body = {  # the state as it is now, not when the message gets sent
            "status": state.status,
            "phase": state.phase,
            "severity": state.severity,
            "finding_type": state.finding.type,
            "resource_id": state.resource_id,
            "message": message,
        }
        request = NotifyInput(incident_id=state.incident_id, channel=channel, subject=subject, body=body)
        previous = self._sending

        async def send() -> None:
            if previous is not None:
                await previous
            await self.record.try_act(publish_notification, request, QUICK)

        self._sending = asyncio.ensure_future(send())

    async def sent(self) -> None:
        """Every message queued so far is out (or failed and was recorded)."""
        if self._sending is not None:
            await self._sending
