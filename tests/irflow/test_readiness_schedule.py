"""The readiness schedule: one per deployment (task queue), starting the ReadinessWorkflow every
IRFLOW_READINESS_INTERVAL_SECONDS; a second `irflow schedule` updates it and never makes another."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client, ScheduleActionStartWorkflow

from irflow.models.settings import IrflowSettings
from irflow.readiness_schedule import ensure_readiness_schedule, readiness_schedule_id


async def _schedules(client: Client, schedule_id: str) -> list[str]:
    return [s.id async for s in await client.list_schedules() if s.id == schedule_id]


async def _started_runs(client: Client, queue: str) -> list[str]:
    query = f"WorkflowType = 'ReadinessWorkflow' AND TaskQueue = '{queue}'"
    for _ in range(200):
        started = [w.id async for w in client.list_workflows(query)]
        if started:
            return started
        await asyncio.sleep(0.05)
    return []


async def test_the_schedule_is_created_once_then_updated_keeping_its_state(dev_env):
    client = dev_env.client
    queue = f"irflow-test-{uuid.uuid4().hex[:10]}"
    schedule_id = readiness_schedule_id(queue)
    handle = client.get_schedule_handle(schedule_id)
    try:
        assert await ensure_readiness_schedule(client, IrflowSettings(task_queue=queue, readiness_interval_seconds=120))
        described = await handle.describe()
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(seconds=120)]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == ("ReadinessWorkflow", queue)
        # Its first run starts at once, not an interval later.
        (first,) = await _started_runs(client, queue)
        assert first.startswith(schedule_id)

        await handle.pause(note="an operator's pause")
        updated = IrflowSettings(task_queue=queue, readiness_interval_seconds=300)
        assert not await ensure_readiness_schedule(client, updated), "the second call updates"
        for _ in range(200):  # the list of schedules is visibility, which follows a moment behind
            if await _schedules(client, schedule_id):
                break
            await asyncio.sleep(0.05)
        assert await _schedules(client, schedule_id) == [schedule_id], "never a second schedule"
        described = await handle.describe()
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(seconds=300)]
        assert described.schedule.state.paused, "a paused schedule stays paused"
    finally:
        await handle.delete()
        async for run in client.list_workflows(f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"):
            await client.get_workflow_handle(run.id, run_id=run.run_id).terminate("test over")
