"""Reserving an automatic containment with the blast-radius governor (`workflows.governor`): Temporal,
not AWS. Update-with-start, so the first incident of a deployment starts the governor and every other
finds it; idempotent, since the governor counts each incident once however often this is retried."""

from __future__ import annotations

import asyncio
import random

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

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
    # The server takes only a few updates in flight per workflow (10 by default) and refuses the rest with
    # RESOURCE_EXHAUSTED. Under a burst of findings that is expected, not a failure: ask again after a short
    # jittered pause. Failing the activity instead put each incident into Temporal's growing retry backoff, and a
    # 1,000-finding burst waited minutes on the governor (bench/load.py).
    pause = 0.02
    while True:
        try:
            return await client.execute_update_with_start_workflow(
                RESERVE_UPDATE, request, start_workflow_operation=start, result_type=Reservation
            )
        except RPCError as error:
            if error.status != RPCStatusCode.RESOURCE_EXHAUSTED:
                raise
        await asyncio.sleep(random.uniform(pause / 2, pause))  # noqa: S311 - jitter, not a secret
        pause = min(pause * 2, 0.5)


@activity.defn
async def reserve_automatic_containment(request: ReservationRequest) -> Reservation:
    return await reserve(activity.client(), activity.info().task_queue, request)
