"""Hostile input through the whole listener (SQS and S3 in moto, a Temporal dev server): a gzip bomb of a log
file, message bodies nested 100,000 deep (bare and inside SNS), a message of thousands of tiny items. Each goes
to the dead-letter queue with its reason and code, nothing raises, and the listener goes on reading."""

from __future__ import annotations

import gzip
import json

import boto3

from irflow.devstack.demo import sample_cloudtrail_event
from irflow.intake.envelopes import MAX_ITEMS_PER_MESSAGE
from irflow.intake.listener import FindingListener
from irflow.models.finding import MAX_JSON_DEPTH
from irflow.models.settings import IrflowSettings
from tests.fuzz_support import deep_text, gzip_bomb, s3_notification, sns
from tests.irflow.intake.listener_support import _depth, _drain, _listen_until, _send

LIMIT = 1024 * 1024


async def test_bombs_and_deep_nesting_are_dead_lettered_with_the_reason_and_the_listener_goes_on(
    dev_env, workload, queues
):
    sqs, queue, dlq = queues
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    s3.put_object(Bucket="trail", Key="AWSLogs/bomb.json.gz", Body=gzip_bomb(10 * 1024 * 1024))
    record = sample_cloudtrail_event(workload, "DescribeTrails", read_only=True)["detail"]
    s3.put_object(
        Bucket="trail", Key="AWSLogs/good.json.gz", Body=gzip.compress(json.dumps({"Records": [record]}).encode())
    )
    _send(
        sqs,
        queue,
        [
            s3_notification("trail", "AWSLogs/bomb.json.gz"),
            deep_text(100_000),
            sns(deep_text(100_000)),
            [{}] * (MAX_ITEMS_PER_MESSAGE + 1),
        ],
    )
    listener = FindingListener(
        dev_env.client,
        IrflowSettings(task_queue="unused", log_file_max_bytes=LIMIT),
        queue_urls=[queue],
        wait_seconds=1,
    )
    good_sent = []

    def hostile_ones_done_then_the_good_file_read() -> bool:
        # the good log file is sent only once the hostile messages are dead-lettered: it shows the listener
        # still reads, rather than having read it beside them
        if listener.stats.dead_lettered >= 4 and not good_sent:
            _send(sqs, queue, [s3_notification("trail", "AWSLogs/good.json.gz")])
            good_sent.append(True)
        return bool(good_sent) and listener.stats.log_files >= 1 and _depth(sqs, queue) == 0

    await _listen_until(listener, hostile_ones_done_then_the_good_file_read)

    dead = {
        m["MessageAttributes"]["irflow-code"]["StringValue"]
        + ": "
        + m["MessageAttributes"]["irflow-reason"]["StringValue"]
        for m in _drain(sqs, dlq)
    }
    assert dead == {
        f"log_file_too_large: s3://trail/AWSLogs/bomb.json.gz decompresses to more than {LIMIT} bytes "
        f"(IRFLOW_LOG_FILE_MAX_BYTES={LIMIT})",
        f"too_deep: message body is nested deeper than {MAX_JSON_DEPTH} levels",
        f"too_deep: SNS notification's Message is nested deeper than {MAX_JSON_DEPTH} levels",
        f"too_many: more than {MAX_ITEMS_PER_MESSAGE} findings and CloudTrail records in one message: "
        f"irflow reads at most {MAX_ITEMS_PER_MESSAGE}",
    }
    assert listener.stats.errors == 0, "nothing raised: every message ended in a result or a reason"
    assert (listener.stats.log_files, listener.stats.log_records) == (1, 1)
