"""The Temporal Schedule that runs the ReadinessWorkflow every IRFLOW_READINESS_INTERVAL_SECONDS on the deployment's
task queue (`irflow schedule`, `make run`). One per deployment: its id is named after the task queue."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from activities.readiness_temporal import READINESS_WORKFLOW
from irflow.models.settings import IrflowSettings

# A run takes seconds; one that hangs (no worker) is given up after this, and the next one starts on time.
RUN_TIMEOUT = timedelta(minutes=10)


def readiness_schedule_id(task_queue: str) -> str:
    """The deployment's one readiness schedule (its task queue), like the governor's workflow id."""
    return f"irflow-readiness-{task_queue}"


def readiness_schedule(settings: IrflowSettings) -> Schedule:
    every = timedelta(seconds=settings.readiness_interval_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            READINESS_WORKFLOW,
            id=readiness_schedule_id(settings.task_queue),  # each run's id: this, then its scheduled time
            task_queue=settings.task_queue,
            execution_timeout=RUN_TIMEOUT,
            static_summary="irflow readiness: is everything in place to respond?",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # Never two runs at once (each compares with the one before); a run missed while Temporal was down is
        # made up for once, not once per missed interval.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
        state=ScheduleState(note="created by irflow schedule"),
    )


async def ensure_readiness_schedule(client: Client, settings: IrflowSettings) -> bool:
    """Create the schedule (its first run at once), or update the one there to these settings, keeping its
    state (paused by an operator stays paused). Idempotent. Returns True when it was created."""
    wanted = readiness_schedule(settings)
    schedule_id = readiness_schedule_id(settings.task_queue)
    try:
        await client.create_schedule(schedule_id, wanted, trigger_immediately=True)
        return True
    except ScheduleAlreadyRunningError:
        pass

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(wanted, state=current.description.schedule.state))

    await client.get_schedule_handle(schedule_id).update(update)
    return False
