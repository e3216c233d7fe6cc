"""The irflow worker: runs IncidentWorkflow, the governor, ReadinessWorkflow and the activities on the task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

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


def build_worker(
    client: Client, settings: IrflowSettings, executor: ThreadPoolExecutor, activities=None, debug_mode: bool = False
) -> Worker:
    # The policy is the one thing always bound to this worker's own settings, whatever the activities.
    policy = WorkerPolicy(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[IncidentWorkflow, ContainmentGovernor, ReadinessWorkflow],
        activities=[
            *(activities if activities is not None else all_activities()),
            policy.load_response_policy,
        ],
        activity_executor=executor,
        max_concurrent_activities=settings.activity_threads,
        debug_mode=debug_mode,
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
    client = await connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=settings.activity_threads) as executor:
        worker = build_worker(client, settings, executor)
        async with worker:
            log.info(
                "worker ready on task queue %r at %s", settings.task_queue, client.service_client.config.target_host
            )
            await stop.wait()
            warming.cancel()
            log.info("worker stopping: finishing in-flight tasks")
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
