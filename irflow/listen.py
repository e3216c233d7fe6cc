"""`starter.py` (no files) and `irflow listen`: run the finding listener until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from irflow.intake.listener import FindingListener, ListenerConfigurationError
from irflow.models.settings import IrflowSettings
from irflow.startup import prepare_process
from irflow.telemetry import shutdown_tracing
from irflow.temporal_client import connect

EXIT_OK, EXIT_CONFIGURATION = 0, 2


async def listen_main(queue_urls: list[str] | None = None, wait_seconds: int = 20) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "urllib3", "temporalio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    prepared = prepare_process("irflow-listener")
    if prepared is None:
        return EXIT_CONFIGURATION
    settings, provider = prepared
    try:
        return await _listen(settings, queue_urls, wait_seconds)
    finally:
        shutdown_tracing(provider)


async def _listen(settings: IrflowSettings, queue_urls: list[str] | None, wait_seconds: int) -> int:
    client = await connect(lazy=True)  # the listener starts (and holds messages) while Temporal is down
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        listener = FindingListener(client, settings, queue_urls=queue_urls, wait_seconds=wait_seconds)
        stats = await listener.run(stop)
    except ListenerConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    print(json.dumps({"listener_stats": stats.snapshot()}, sort_keys=True), flush=True)
    return EXIT_OK
