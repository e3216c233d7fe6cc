"""The irflow worker: runs IncidentWorkflow, the governor, ReadinessWorkflow and the activities on the task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import all_activities
from activities.aws import warm_clients
from activities.worker_policy import WorkerPolicy
from irflow.models.settings import IrflowSettings
from irflow.startup import prepare_process
from irflow.telemetry import shutdown_tracing
from irflow.temporal_client import connect, exit_now
from workflows.governor import ContainmentGovernor
from workflows.incident import IncidentWorkflow
from workflows.readiness import ReadinessWorkflow

log = logging.getLogger("irflow.worker")
# Every workflow the worker runs; tests/workflows/test_incident_replay.py replays a recorded history of each.
WORKFLOWS = [IncidentWorkflow, ContainmentGovernor, ReadinessWorkflow]


def build_worker(
    client: Client,
    settings: IrflowSettings,
    executor: ThreadPoolExecutor,
    activities=None,
    debug_mode: bool = False,
    drain: timedelta = timedelta(),
) -> Worker:
    """`drain`: after shutdown begins, how long running activities may finish before they are cancelled (and
    their attempts retried by another worker). In-process test workers keep the SDK's default, none."""
    # The policy is the one thing always bound to this worker's own settings, whatever the activities.
    policy = WorkerPolicy(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            *(activities if activities is not None else all_activities()),
            policy.load_response_policy,
        ],
        activity_executor=executor,
        max_concurrent_activities=settings.activity_threads,
        debug_mode=debug_mode,
        graceful_shutdown_timeout=drain,
    )


async def _warm_aws_clients() -> None:
    seconds = await asyncio.to_thread(warm_clients)
    log.info("AWS clients ready in %.2f s", seconds)


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prepared = prepare_process("irflow-worker")
    if prepared is None:
        return 2
    settings, provider = prepared
    try:
        return await _run(settings)
    finally:
        shutdown_tracing(provider)


async def _run(settings: IrflowSettings) -> int:
    # AWS clients are made while the worker connects and polls, so a first incident does not wait for them
    warming = asyncio.create_task(_warm_aws_clients())
    stop = asyncio.Event()  # set before connecting: a SIGTERM during start-up still ends in an orderly exit 0
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await connect()
    with ThreadPoolExecutor(max_workers=settings.activity_threads) as executor:
        # A rolling restart's SIGTERM must not fail the activities running here: leaving the block stops polling
        # at once, lets running activities finish and report for drain_seconds, then cancels what is left (its
        # attempt is retried elsewhere) and returns once every outcome is reported.
        worker = build_worker(client, settings, executor, drain=timedelta(seconds=settings.drain_seconds))
        async with worker:
            log.info(
                "worker ready on task queue %r at %s", settings.task_queue, client.service_client.config.target_host
            )
            await stop.wait()
            warming.cancel()
            log.info(
                "worker stopping: no new tasks; running activities have %ss to finish", f"{settings.drain_seconds:g}"
            )
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
