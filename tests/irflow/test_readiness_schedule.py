"""The readiness schedule: one per deployment (task queue), starting the ReadinessWorkflow every
IRFLOW_READINESS_INTERVAL_SECONDS; a second `irflow schedule` updates it to the settings and never makes another."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleListActionStartWorkflow

from irflow.models.settings import IrflowSettings
from irflow.readiness_schedule import ensure_readiness_schedule, readiness_schedule_id


async def _readiness_schedules(client: Client, queue: str) -> list[tuple[str, list[timedelta]]]:
    """Every schedule Temporal lists that starts the ReadinessWorkflow on `queue`: its id and its intervals."""
    found = []
    async for listed in await client.list_schedules():
        action = listed.schedule.action
        if isinstance(action, ScheduleListActionStartWorkflow) and action.workflow == "ReadinessWorkflow":
            described = await client.get_schedule_handle(listed.id).describe()  # the list does not name the queue
            assert isinstance(described.schedule.action, ScheduleActionStartWorkflow)
            if described.schedule.action.task_queue == queue:
                found.append((listed.id, [i.every for i in listed.schedule.spec.intervals]))
    return found


async def _listed(client: Client, queue: str, expected: list[tuple[str, list[timedelta]]]) -> None:
    """Until the list of schedules (visibility, a moment behind) is `expected`, or fail with what it is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        if (found := await _readiness_schedules(client, queue)) == expected:
            return
        await asyncio.sleep(0.1)
    assert found == expected


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
        await _listed(client, queue, [(schedule_id, [timedelta(seconds=120)])])
        # Its first run starts at once, not an interval later.
        (first,) = await _started_runs(client, queue)
        assert first.startswith(schedule_id)

        await handle.pause(note="an operator's pause")
        updated = IrflowSettings(task_queue=queue, readiness_interval_seconds=300)
        assert not await ensure_readiness_schedule(client, updated), "the second call updates"
        # Still exactly one schedule of readiness on the queue, and it runs every 300 s now.
        await _listed(client, queue, [(schedule_id, [timedelta(seconds=300)])])
        described = await handle.describe()
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(seconds=300)]
        assert described.schedule.state.paused, "a paused schedule stays paused"
    finally:
        await handle.delete()
        async for run in client.list_workflows(f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"):
            await client.get_workflow_handle(run.id, run_id=run.run_id).terminate("test over")
