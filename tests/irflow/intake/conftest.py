"""Fixtures of the intake tests: `queues`, a findings queue with its dead-letter queue in moto, for the tests
that run a listener (test_listener, test_dead_letters, test_log_files)."""

from __future__ import annotations

import boto3
import pytest

from tests.irflow.intake.listener_support import _findings_queue


@pytest.fixture
def queues(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="findings-dlq")["QueueUrl"]
    return sqs, _findings_queue(sqs, dlq), dlq
