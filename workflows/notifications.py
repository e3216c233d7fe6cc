"""SNS notifications of an incident: queued and sent in order in the background, so a slow or failing SNS
never delays containment; the incident waits for the queue to drain before it ends. Each message says what it is
about (the account, the resource, the finding, the incident's workflow), from which the activity makes its links."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.notify import publish_notification
    from irflow.models.source_findings import (
        LinkedNotifyInput,
        NotificationSubject,
        console_resource,
        not_from_aws,
        source_finding,
    )

from workflows.activity_options import QUICK
from workflows.record import IncidentRecord


class Notifier:
    def __init__(self, record: IncidentRecord) -> None:
        self.record = record
        self._sending: asyncio.Future | None = None
        self._about: NotificationSubject | None = None

    def about(self) -> NotificationSubject:
        """What the incident's messages are about: its first finding's account, resource and finding, its workflow."""
        if self._about is None:
            finding, info = self.record.state.finding, workflow.info()
            self._about = NotificationSubject(
                account_id=finding.account_id,
                region=finding.region,
                partition=finding.partition,
                resource=console_resource(finding),
                finding=None if not_from_aws(finding) else source_finding(finding),
                workflow_id=info.workflow_id,
                namespace=info.namespace,
            )
        return self._about

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
        request = LinkedNotifyInput(
            incident_id=state.incident_id, channel=channel, subject=subject, body=body, about=self.about()
        )
        previous = self._sending

        async def send() -> None:
            if previous is not None:
                await previous
            await self.record.try_act(publish_notification, request, QUICK)

        self._sending = asyncio.ensure_future(send())

    @property
    def idle(self) -> bool:
        return self._sending is None or self._sending.done()

    async def sent(self) -> None:
        """Every message queued so far is out (or failed and was recorded)."""
        if self._sending is not None:
            await self._sending
