"""Hand a parsed finding to Temporal: start its incident, or join the incident already running."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from irflow.intake.router import incident_id, route
from irflow.models.finding import ParsedFinding, pack_raw
from irflow.models.incident import (
    INCIDENT_WORKFLOW,
    FindingDelivery,
    IncidentInput,
    IncidentState,
    Phase,
    Status,
)
from irflow.models.settings import IrflowSettings
from irflow.telemetry import tracer
from workflows import search_attributes as sa

# Temporal refuses payloads over 2 MB. Packed findings are a tenth of their JSON; one that is still
# too big travels without its original (its SHA-256 is in the finding) and the incident notes it.
PACKED_RAW_LIMIT = 512 * 1024


@dataclass(frozen=True)
class Submission:
    workflow_id: str
    incident_id: str
    joined: bool
    finding_id: str
    finding_type: str


def finding_delivery(
    parsed: ParsedFinding, received_at: datetime | None, origin: str, delivery_id: str | None
) -> FindingDelivery:
    """A finding as it reaches an incident: its original packed (left out when too big), when and where from, and
    the delivery's id (a redelivered message is recognised by it)."""
    packed = pack_raw(parsed.raw)
    return FindingDelivery(
        finding=parsed.finding,
        raw_packed=packed if len(packed) <= PACKED_RAW_LIMIT else None,
        received_at=received_at or datetime.now(UTC),
        origin=origin,
        delivery_id=delivery_id or f"{origin}:{parsed.finding.raw_sha256}",
    )


async def submit(
    client: Client,
    parsed: ParsedFinding,
    settings: IrflowSettings,
    received_at: datetime | None = None,
    origin: str = "",
    delivery_id: str | None = None,
    opened_by: tuple[str, str] | None = None,
) -> Submission:
    """Signal-with-start: a new incident for the resource, or the finding joins the running one.

    A resource whose last incident has ended gets a new incident: a new run under the same workflow id
    (the incident key), with a new incident id (the key plus the time it opened).

    `opened_by` = (playbook, why) routes the finding to that playbook (see `intake.router.route`).

    Raises `FindingRejected` when no playbook can answer the finding; Temporal errors propagate, so a
    caller that holds a queue message keeps it until Temporal has acknowledged.
    """
    finding = parsed.finding
    destination = route(finding, settings.playbook_overrides, opened_by)
    received_at = received_at or datetime.now(UTC)
    # The router makes only valid incident ids; the workflow checks its id again (anyone may start one).
    new_incident_id = incident_id(destination.incident_key, received_at)
    # Span attributes, search attributes and the summary are never encrypted: the resource as irflow shows it
    # in clear (an identity only hashed, see irflow.visibility), never the finding's title, addresses or agents.
    # The workflow keeps showing it so: it is handed the router's decision, not left to guess.
    shown = destination.shown_id
    nonce = uuid.uuid4().hex  # tells afterwards whether this call opened the incident or joined one
    delivery = finding_delivery(parsed, received_at, origin, delivery_id)
    request = IncidentInput(
        incident_id=new_incident_id,
        playbook=destination.playbook,
        finding=finding,
        raw_packed=delivery.raw_packed,
        delivery_id=delivery.delivery_id,
        routing_reason=destination.reason,
        resource_id=destination.resource_id,
        shown_resource_id=shown,
        received_at=received_at,
    )
    attributes = {
        "irflow.finding.id": finding.id,
        "irflow.finding.type": finding.type,
        "irflow.finding.severity": str(finding.severity),
        "irflow.finding.source": str(finding.source),
        "irflow.resource.id": shown,
        "irflow.playbook": destination.playbook,
        "irflow.workflow_id": destination.incident_key,
        "irflow.delivery_id": delivery.delivery_id,
    }
    # The parent of the incident's workflow and activity spans (Temporal's TracingInterceptor carries it).
    with tracer.start_as_current_span("irflow.submit_finding", attributes=attributes) as span:
        await client.start_workflow(
            INCIDENT_WORKFLOW,
            request,
            result_type=IncidentState,
            id=destination.incident_key,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="add_finding",
            start_signal_args=[delivery],
            search_attributes=sa.incident_attributes(
                incident_id=new_incident_id,
                finding=finding,
                resource_id=shown,
                status=str(Status.ACTIVE),
                phase=str(Phase.DETECTION),
                severity=str(finding.severity),
            ),
            memo={"incident_id": new_incident_id, "opened_by": nonce},
            static_summary=f"{finding.severity} {finding.type} on {shown} ({destination.playbook})",
            static_details=(
                f"**Finding:** {finding.type} ({finding.id})\n\n**Resource:** {finding.resource.resource_type} "
                f"{shown} in {finding.account_id}/{finding.region}\n\n"
                f"**Severity:** {finding.severity} ({finding.severity_score})"
            ),
        )
        # The incident this finding reached: ours if our nonce is in its memo, else the one already running.
        memo = await (await client.get_workflow_handle(destination.incident_key).describe()).memo()
        joined = memo.get("opened_by") != nonce
        reached = str(memo.get("incident_id", destination.incident_key))
        span.set_attribute("irflow.incident_id", reached)
        span.set_attribute("irflow.joined", joined)
    return Submission(destination.incident_key, reached, joined, finding.id, finding.type)
