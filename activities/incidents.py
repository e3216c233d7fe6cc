"""Incidents that open incidents: a role whose credentials were taken from an instance also makes the instance an
incident; an attack sequence, each resource it names (`activities.sequences`). Both go through `intake.submit`, the
listener's own path (signal-with-start on the resource's incident key), so a resource gets one incident whoever
reports it first, and a retried call is one delivery, not two."""

from __future__ import annotations

import hashlib
from typing import Any

from temporalio import activity

from irflow.intake.router import EC2_PLAYBOOK
from irflow.intake.submit import Submission, submit
from irflow.models.finding import AffectedResource, Finding, ParsedFinding, canonical_json, unpack_raw
from irflow.models.incident import RELATED_DELIVERY_PREFIX, RelatedIncident, RelatedIncidentsInput
from irflow.models.settings import IrflowSettings, get_settings


def original_record(finding: Finding, raw_packed: str | None) -> dict[str, Any]:
    """The record the asking incident was opened from (its finding, when the original did not travel)."""
    return unpack_raw(raw_packed) if raw_packed else finding.model_dump(mode="json")


async def open_related_incident(
    asking: str,
    finding: Finding,
    raw: dict[str, Any],
    settings: IrflowSettings,
    subject: str,
    opened_by: tuple[str, str] | None = None,
) -> Submission:
    """Start or join the incident of the resource `finding` is about, for the incident `asking`. The delivery id
    is fixed by the two (`subject` names the resource), so the resource's incident counts a retry once."""
    finding = finding.model_copy(update={"raw_sha256": hashlib.sha256(canonical_json(raw)).hexdigest()})
    return await submit(
        activity.client(),
        ParsedFinding(finding=finding, original_shape="related", raw=raw),
        settings,
        origin=f"{RELATED_DELIVERY_PREFIX}{asking}",
        delivery_id=f"{RELATED_DELIVERY_PREFIX}{asking}:{subject}",
        opened_by=opened_by,
    )


@activity.defn
async def open_instance_incidents(request: RelatedIncidentsInput) -> list[RelatedIncident]:
    """One EC2 incident per instance, started or joined; idempotent (each delivery id is fixed, so a
    retried call is recognised by the instance's incident and not counted twice)."""
    settings = get_settings().model_copy(update={"task_queue": request.task_queue})
    raw = original_record(request.finding, request.raw_packed)
    opened = []
    for instance_id in request.instance_ids:
        resource = AffectedResource(resource_type="Instance", resource_id=instance_id, instance_id=instance_id)
        submission = await open_related_incident(
            request.incident_id,
            request.finding.model_copy(update={"resource": resource}),
            raw,
            settings,
            subject=instance_id,
            opened_by=(EC2_PLAYBOOK, f"{request.reason} (opened by incident {request.incident_id})"),
        )
        opened.append(
            RelatedIncident(
                instance_id=instance_id,
                workflow_id=submission.workflow_id,
                incident_id=submission.incident_id,
                joined=submission.joined,
            )
        )
    return opened
