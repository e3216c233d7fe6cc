"""Dead-lettering with the shared state table (moto in-process): a message delivered to two listeners reaches the
dead-letter queue once; a failed send lets the other listener send it; one listener mid-send makes the other wait."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from irflow.detection.shared_state import DynamoState
from irflow.intake.dead_letters import DeadLetters
from irflow.intake.listener_stats import ListenerStats
from irflow.models.finding import FindingRejected
from tests.irflow.detection.test_shared_state import make_table

QUEUE, DLQ = "https://sqs.example/findings", "https://sqs.example/findings-dlq"
MESSAGE = {"MessageId": "m-1", "Body": "not json {", "Attributes": {"ApproximateReceiveCount": "1"}}
PROBLEM = [FindingRejected("invalid_json", "not JSON")]


class FakeSqs:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict] = []
        self.fail = fail

    async def __call__(self, method: str, **kwargs) -> dict:
        assert method == "send_message"
        if self.fail:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")
        self.sent.append(kwargs)
        return {}


@pytest.fixture
def state(aws) -> DynamoState:
    return DynamoState(make_table())


def listener(sqs: FakeSqs, state: DynamoState) -> DeadLetters:
    dead_letters = DeadLetters(sqs, ListenerStats(), shared=state)
    dead_letters.targets[QUEUE] = DLQ
    return dead_letters


async def test_a_message_delivered_to_two_listeners_is_dead_lettered_once(state):
    one_sqs, other_sqs = FakeSqs(), FakeSqs()
    one, other = listener(one_sqs, state), listener(other_sqs, state)
    assert await one.send_once(QUEUE, MESSAGE, PROBLEM) is True
    assert await other.send_once(QUEUE, dict(MESSAGE), PROBLEM) is True, "deleted: it is already there"
    assert len(one_sqs.sent) + len(other_sqs.sent) == 1
    assert other.stats.dead_letter_repeats == 1 and other.stats.dead_lettered == 0
    assert one_sqs.sent[0]["MessageAttributes"]["irflow-source-message-id"]["StringValue"] == "m-1"


async def test_when_one_listener_fails_to_send_the_other_sends_it(state):
    failing, working = FakeSqs(fail=True), FakeSqs()
    assert await listener(failing, state).send_once(QUEUE, MESSAGE, PROBLEM) is False
    assert await listener(working, state).send_once(QUEUE, MESSAGE, PROBLEM) is True
    assert len(working.sent) == 1


async def test_a_message_another_listener_is_sending_comes_back_later(state):
    state.claim_once(f"dead-letter#{QUEUE}#m-1", 60, 2e9)  # another listener, mid-send
    sqs = FakeSqs()
    assert await listener(sqs, state).send_once(QUEUE, MESSAGE, PROBLEM) is False, "not deleted: it comes back"
    assert sqs.sent == []
    state.settle(f"dead-letter#{QUEUE}#m-1", True, 2e9)
    assert await listener(sqs, state).send_once(QUEUE, MESSAGE, PROBLEM) is True
    assert sqs.sent == [], "the other listener's send stands"


async def test_without_the_table_a_listener_still_dead_letters(aws):
    sqs = FakeSqs()
    assert await listener(sqs, DynamoState("no-such-table")).send_once(QUEUE, MESSAGE, PROBLEM) is True
    assert len(sqs.sent) == 1, "a copy too many beats a bad message held until SQS's own redrive"
