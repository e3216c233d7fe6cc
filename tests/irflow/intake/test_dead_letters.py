"""Dead-lettering, through the listener: a bad message reaches the dead-letter queue once however often SQS
delivers it, and no delivery of it is deleted before it is there."""

from __future__ import annotations

from botocore.exceptions import ClientError

from irflow.intake.listener import FindingListener
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.listener_support import _depth, _drain, _findings_queue, _listen_until, _send


def _deliver_everything_twice(listener: FindingListener) -> None:
    """SQS is at-least-once: hand each received message to the listener twice, in the same receive."""
    real_receive = listener._sqs.receive_message

    def twice(**kwargs):
        response = real_receive(**kwargs)
        response["Messages"] = [copy for m in response.get("Messages", []) for copy in (m, dict(m))]
        return response

    listener._sqs.receive_message = twice


async def test_a_bad_message_delivered_twice_is_dead_lettered_once(dev_env, workload, queues):
    sqs, queue, dlq = queues
    _send(sqs, queue, ["not json {"])
    listener = FindingListener(dev_env.client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    _deliver_everything_twice(listener)
    await _listen_until(listener, lambda: listener.stats.deleted >= 1 and _depth(sqs, queue) == 0)
    assert listener.stats.received >= 2 and listener.stats.dead_letter_repeats >= 1
    assert listener.stats.dead_lettered == 1
    dead = _drain(sqs, dlq)
    assert [m["Body"] for m in dead] == ["not json {"], "one copy in the dead-letter queue"


async def test_when_dead_lettering_fails_no_delivery_of_the_message_is_deleted(dev_env, workload, queues):
    sqs, _, dlq = queues
    queue = _findings_queue(sqs, dlq, name="findings-short", visibility_timeout=1)
    _send(sqs, queue, ["not json {"])
    listener = FindingListener(dev_env.client, IrflowSettings(task_queue="unused"), queue_urls=[queue], wait_seconds=1)
    _deliver_everything_twice(listener)
    real_send, refused = listener._sqs.send_message, []

    def send_once_refused(**kwargs):
        if not refused:
            refused.append(kwargs["QueueUrl"])
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "SendMessage")
        return real_send(**kwargs)

    listener._sqs.send_message = send_once_refused
    await _listen_until(listener, lambda: listener.stats.dead_lettered >= 1 and _depth(sqs, queue) == 0)
    assert refused == [dlq], "the first dead-letter send failed"
    assert listener.stats.received >= 4, "both deliveries of the first receive came back"
    dead = _drain(sqs, dlq)
    assert [m["Body"] for m in dead] == ["not json {"], "kept, and dead-lettered once it could be"
