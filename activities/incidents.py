"""Incidents that open incidents: a role whose credentials were taken from an instance also makes the
instance an incident. Goes through `intake.submit`, the listener's own path (signal-with-start on the
instance's incident key), so the instance gets one incident whoever reports it first."""

from __future__ import annotations

import hashlib

from temporalio import activity

from irflow.intake.router import EC2_PLAYBOOK
from irflow.intake.submit import submit
from irflow.models.finding import AffectedResource, ParsedFinding, canonical_json, unpack_raw
from irflow.models.incident import RelatedIncident, RelatedIncidentsInput
from irflow.models.settings import get_settings


@activity.defn
async def open_instance_incidents(request: RelatedIncidentsInput) -> list[RelatedIncident]:
    """One EC2 incident per instance, started or joined; idempotent (each delivery id is fixed, so a
    retried call is recognised by the instance's incident and not counted twice)."""
    settings = get_settings().model_copy(update={"task_queue": request.task_queue})
    raw = unpack_raw(request.raw_packed) if request.raw_packed else request.finding.model_dump(mode="json")
    opened = []
    for instance_id in request.instance_ids:
        finding = request.finding.model_copy(
            update={
                "resource": AffectedResource(
                    resource_type="Instance", resource_id=instance_id, instance_id=instance_id
                ),
                "raw_sha256": hashlib.sha256(canonical_json(raw)).hexdigest(),
            }
        )
        submission = await submit(
            activity.client(),
            ParsedFinding(finding=finding, original_shape="related", raw=raw),
            settings,
            origin=f"incident:{request.incident_id}",
            delivery_id=f"incident:{request.incident_id}:{instance_id}",
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
