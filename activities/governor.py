"""Reserving an automatic containment with the blast-radius governor (`workflows.governor`): Temporal,
not AWS. Update-with-start, so the first incident of a deployment starts the governor and every other
finds it; idempotent, since the governor counts each incident once however often this is retried."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from irflow.models.governor import (
    GOVERNOR_WORKFLOW,
    RESERVE_UPDATE,
    GovernorState,
    Reservation,
    ReservationRequest,
    governor_id,
)


async def reserve(client: Client, queue: str, request: ReservationRequest) -> Reservation:
    """Reserve with the governor of the deployment on `queue`, starting it if it is not running."""
    start = WithStartWorkflowOperation(
        GOVERNOR_WORKFLOW,
        GovernorState(),
        id=governor_id(queue),
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="irflow blast-radius governor: automatic containments of the last hour",
    )
    return await client.execute_update_with_start_workflow(
        RESERVE_UPDATE, request, start_workflow_operation=start, result_type=Reservation
    )


@activity.defn
async def reserve_automatic_containment(request: ReservationRequest) -> Reservation:
    return await reserve(activity.client(), activity.info().task_queue, request)
