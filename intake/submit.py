"""Hand a parsed finding to Temporal: start its incident, or join the incident already running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from intake.router import incident_id, route
from models.finding import ParsedFinding, canonical_json
from models.incident import IncidentInput, Phase, Status
from models.settings import IrflowSettings
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow

# Temporal refuses payloads over 2 MB; the raw finding travels only when comfortably below that.
RAW_FINDING_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Submission:
    workflow_id: str
    incident_id: str
    joined: bool
    finding_id: str
    finding_type: str


async def running_incident_id(client: Client, workflow_id: str) -> str | None:
    """The incident id of the running incident with this key, if one is running."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        return None
    memo = await description.memo()
    return str(memo.get("incident_id", workflow_id))


async def submit(
    client: Client, parsed: ParsedFinding, settings: IrflowSettings, received_at: datetime | None = None
) -> Submission:
    """Signal-with-start: a new incident for the resource, or the finding joins the running one.

    Raises `FindingRejected` when no playbook can answer the finding; Temporal errors propagate, so a
    caller that holds a queue message keeps it until Temporal has acknowledged.
    """
    finding = parsed.finding
    destination = route(finding)
    received_at = received_at or datetime.now(UTC)
    running = await running_incident_id(client, destination.incident_key)
    new_incident_id = incident_id(destination.incident_key, received_at)
    raw = parsed.raw if len(canonical_json(parsed.raw)) <= RAW_FINDING_LIMIT else None
    request = IncidentInput(
        incident_id=new_incident_id,
        playbook=destination.playbook,
        finding=finding,
        raw_finding=raw,
        policy=settings.response_policy(),
        received_at=received_at,
    )
    await client.start_workflow(
        IncidentWorkflow.run,
        request,
        id=destination.incident_key,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="add_finding",
        start_signal_args=[finding],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.STATUS, str(Status.ACTIVE)),
                SearchAttributePair(sa.PHASE, str(Phase.DETECTION)),
                SearchAttributePair(sa.SEVERITY, str(finding.severity)),
                SearchAttributePair(sa.FINDING_TYPE, finding.type),
                SearchAttributePair(sa.RESOURCE_ID, destination.resource_id),
                SearchAttributePair(sa.RESOURCE_TYPE, finding.resource.resource_type),
                SearchAttributePair(sa.ACCOUNT, finding.account_id),
            ]
        ),
        memo={"incident_id": new_incident_id},
        static_summary=f"{finding.severity} {finding.type} on {destination.resource_id}",
        static_details=(
            f"**Finding:** {finding.type} ({finding.id})\n\n**Resource:** {finding.resource.resource_type} "
            f"{destination.resource_id} in {finding.account_id}/{finding.region}\n\n"
            f"**Severity:** {finding.severity} ({finding.severity_score})\n\n{finding.title}"
        ),
    )
    if running is not None:
        return Submission(destination.incident_key, running, True, finding.id, finding.type)
    return Submission(destination.incident_key, new_incident_id, False, finding.id, finding.type)
