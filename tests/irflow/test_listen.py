"""`irflow listen` / `starter.py` without files (`listen_main`): what it refuses before listening, in-process.
Listening until SIGTERM, and the statistics it prints then, are process-level: tests/e2e/test_listener_processes.py."""

from __future__ import annotations

import asyncio
import logging
import signal

import boto3
import pytest

from irflow.listen import EXIT_CONFIGURATION, listen_main
from irflow.models.settings import get_settings


@pytest.fixture(autouse=True)
async def restored_process_state(monkeypatch):
    """listen_main configures logging and the loop's signal handlers for the process it runs in: put them back."""
    loggers = {name: logging.getLogger(name).level for name in ("botocore", "urllib3", "temporalio")}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for name in ("IRFLOW_SETTINGS_FILE", "IRFLOW_QUEUE_URLS", "IRFLOW_DEAD_LETTER_QUEUE_URL", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IRFLOW_DETECTION", "false")  # no rule catalogue to load: these tests stop before events
    get_settings.cache_clear()
    yield
    loop = asyncio.get_running_loop()
    for sig, handler in handlers.items():
        loop.remove_signal_handler(sig)
        signal.signal(sig, handler)
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


async def test_an_invalid_setting_is_one_line_and_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("IRFLOW_LISTENER_BATCHES_IN_FLIGHT", "100")
    assert await listen_main(["https://sqs.us-east-1.amazonaws.com/123456789012/findings"]) == EXIT_CONFIGURATION
    assert one_error_line(capsys).startswith("invalid settings: IRFLOW_LISTENER_BATCHES_IN_FLIGHT: ")


async def test_without_a_queue_it_says_how_to_name_one_and_exits_2(capsys) -> None:
    assert await listen_main() == EXIT_CONFIGURATION
    assert one_error_line(capsys) == "no queue to listen to: set IRFLOW_QUEUE_URLS or pass --queue"


async def test_a_queue_without_a_dead_letter_queue_is_refused_before_listening(aws, capsys) -> None:
    queue_url = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="findings")["QueueUrl"]
    assert await listen_main([queue_url], wait_seconds=1) == EXIT_CONFIGURATION
    line = one_error_line(capsys)
    assert line == (
        f"queue {queue_url} has no dead-letter queue: give it a redrive policy or set IRFLOW_DEAD_LETTER_QUEUE_URL"
    )


async def test_a_queue_that_cannot_be_read_is_refused_naming_it(aws, capsys) -> None:
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue"
    assert await listen_main([queue_url], wait_seconds=1) == EXIT_CONFIGURATION
    assert one_error_line(capsys).startswith(f"cannot read queue {queue_url}: ")
