"""Dead-lettering: a message with findings that cannot become incidents goes to the dead-letter queue once, its
body unchanged and the reasons and codes of its bad findings in message attributes.

The listener deletes such a message only once this send succeeded (now, or for an earlier delivery of the
same message); when the send fails the message stays in its queue and comes back.

With a shared state (IRFLOW_STATE_TABLE), the message id is also claimed there with a conditional write before
the send, so a repeat delivered to another listener is recognised too: "done", it is deleted unsent; claimed by a
listener still sending it, it comes back later. A claim whose holder died runs out after `CLAIM_LEASE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from irflow.detection.shared_state import SharedState, StateUnavailable
from irflow.intake.listener_stats import ListenerStats
from irflow.models.finding import FindingRejected

# The listener's logger: these lines are part of what an operator reads from the listener.
log = logging.getLogger("irflow.listener")

_REMEMBERED_DEAD_LETTERS = 10_000

# A dead-lettered message id is remembered longer than the findings queue keeps a message (four days).
REMEMBER_SECONDS = 5 * 86400
CLAIM_LEASE_SECONDS = 120

SqsCall = Callable[..., Awaitable[dict]]
Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]  # runs a blocking call off the event loop


class DeadLetters:
    """Sends messages to their queue's dead-letter queue, each message once. `targets` maps each findings queue
    to its dead-letter queue; the listener resolves them before it receives anything."""

    def __init__(
        self,
        sqs_call: SqsCall,
        stats: ListenerStats,
        shared: SharedState | None = None,
        blocking: Blocking | None = None,
    ) -> None:
        self._sqs_call = sqs_call
        self.stats = stats
        self.shared = shared
        self._blocking = blocking or _on_default_executor
        self.targets: dict[str, str] = {}
        # Message ids this process dead-lettered lately: SQS may deliver a message twice (at once, to two
        # pollers, or again after a failed delete), and the dead-letter queue should hold it once.
        self._dead_lettered_ids: OrderedDict[str, asyncio.Future[bool]] = OrderedDict()

    async def send_once(self, queue: str, message: dict, problems: list[FindingRejected]) -> bool:
        """True once the message is in the dead-letter queue (sent now, or by an earlier delivery of it)."""
        message_id = message.get("MessageId") or ""
        earlier = self._dead_lettered_ids.get(message_id) if message_id else None
        if earlier is not None:
            if await asyncio.shield(earlier):  # the first delivery's send, maybe still in flight
                self.stats.dead_letter_repeats += 1
                log.info("message %s was already dead-lettered; deleting this repeat delivery", message_id)
                return True
            return False  # the first delivery's send failed: this one comes back too
        sent: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if message_id:  # claimed before any await: a concurrent repeat waits on this send
            self._dead_lettered_ids[message_id] = sent
            while len(self._dead_lettered_ids) > _REMEMBERED_DEAD_LETTERS:
                self._dead_lettered_ids.popitem(last=False)
        sent_ok = False
        claim = f"dead-letter#{queue}#{message_id}" if self.shared is not None and message_id else None
        claimed = False
        try:
            if claim is not None:
                elsewhere = await self._claim(claim)
                claimed = elsewhere == "claimed"
                if elsewhere == "done":
                    sent_ok = True
                    self.stats.dead_letter_repeats += 1
                    log.info("message %s was already dead-lettered by another listener; deleting it", message_id)
                    return True
                if elsewhere == "busy":
                    log.info("message %s is being dead-lettered by another listener; it will come back", message_id)
                    return False
            await self._send(queue, message, problems)
            sent_ok = True
            if claimed and claim is not None:
                await self._settle(claim, done=True)
        except (BotoCoreError, ClientError) as error:
            # Not deleted: the message comes back after its visibility timeout and is handled again;
            # findings already delivered are recognised as repeats by their incident.
            log.warning("could not dead-letter message %s: %s", message_id, error)
        finally:
            if not sent_ok:
                self._dead_lettered_ids.pop(message_id, None)
            sent.set_result(sent_ok)
        if claimed and not sent_ok and claim is not None:  # let the next delivery, on any listener, try again
            await self._settle(claim, done=False)
        return sent_ok

    async def _claim(self, claim: str) -> str:
        """The shared claim's outcome; "claimed" also when the table cannot answer: a copy too many in the
        dead-letter queue beats a bad message held until SQS's own redrive."""
        assert self.shared is not None
        shared = self.shared
        try:
            return await self._blocking(
                lambda: shared.claim_once(claim, CLAIM_LEASE_SECONDS, time.time() + REMEMBER_SECONDS)
            )
        except StateUnavailable as error:
            log.warning("cannot claim %s in the shared state (%s); dead-lettering it anyway", claim, error)
            return "claimed"

    async def _settle(self, claim: str, done: bool) -> None:
        assert self.shared is not None
        shared = self.shared
        try:
            await self._blocking(lambda: shared.settle(claim, done, time.time() + REMEMBER_SECONDS))
        except StateUnavailable as error:  # the claim's lease runs out; a repeat then finds it claimable
            log.warning("cannot settle %s in the shared state: %s", claim, error)

    async def _send(self, queue: str, message: dict, problems: list[FindingRejected]) -> None:
        for problem in problems:
            self.stats.rejected += 1
            self.stats.rejected_by_code[problem.code] += 1
        reason = "; ".join(p.reason for p in problems)
        codes = ",".join(sorted({p.code for p in problems}))
        count = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        await self._sqs_call(
            "send_message",
            QueueUrl=self.targets[queue],
            MessageBody=message.get("Body") or "(empty message)",
            MessageAttributes={
                "irflow-reason": {"DataType": "String", "StringValue": reason[:4000]},
                "irflow-code": {"DataType": "String", "StringValue": codes},
                "irflow-source-queue": {"DataType": "String", "StringValue": queue},
                "irflow-source-message-id": {"DataType": "String", "StringValue": message.get("MessageId", "?")},
                "irflow-receive-count": {"DataType": "Number", "StringValue": str(count)},
            },
        )
        self.stats.dead_lettered += 1
        log.warning("dead-lettered message %s: %s", message.get("MessageId"), reason[:500])


async def _on_default_executor(call: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, call)
