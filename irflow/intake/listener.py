"""The finding listener: SQS → findings → incidents, losing nothing and starting nothing twice.

Guarantees, in order of importance:

* A message is deleted only after Temporal acknowledged every finding in it (started or joined its
  incident), after its bad findings reached the dead-letter queue with their reasons, or after the
  finding was suppressed by policy (logged and counted).
* When Temporal is unreachable the listener stops receiving, hands the messages it holds back to the
  queue, probes Temporal with backoff and says so once per outage; nothing goes to the dead-letter
  queue for an outage.
* Bad input never stops the listener. SIGTERM finishes the messages in hand, then exits.
* Two findings about one resource never make two incidents: the workflow id is the incident key and
  every submission is a signal-with-start with USE_EXISTING.
* A call by anyone but irflow that may undo a containment (a tamper finding, `irflow.detection.tamper`) opens
  nothing: it joins the running incidents that guard what it touched (`tamper`), or is counted and dropped.

This module receives, hands findings to Temporal, holds messages through outages and deletes in batches;
`trust` refuses findings from untrusted sources or about accounts irflow does not answer for (they are
dead-lettered with the reason), `dead_letters` sends bad messages to the dead-letter queue, `log_files` reads
the CloudTrail log files S3 announces, `listener_stats` counts what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from irflow.detection.shared_state import DynamoState
from irflow.detection.tamper import TamperFinding
from irflow.intake.dead_letters import DeadLetters
from irflow.intake.envelopes import LogFileReference, unwrap_text_arrivals
from irflow.intake.filters import suppression_reason
from irflow.intake.listener_stats import ListenerStats
from irflow.intake.log_files import LogFileReader
from irflow.intake.router import route
from irflow.intake.submit import submit
from irflow.intake.tamper import deliver_tamper
from irflow.intake.trust import (
    AccountsUnknown,
    Channel,
    TrustPolicy,
    answered_accounts,
    own_identity,
    screen_accounts,
    screen_sources,
)
from irflow.models.finding import Finding, FindingRejected, ParsedFinding
from irflow.models.settings import IrflowSettings
from irflow.own_principals import own_principal_patterns
from irflow.temporal_client import TemporalUnreachable
from irflow.visibility import shown_resource_id

log = logging.getLogger("irflow.listener")

# Errors after which Temporal may well accept the same request later: hold the message, do not reject it.
_TRANSIENT = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.ABORTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.INTERNAL,
    RPCStatusCode.UNKNOWN,
}


class ListenerConfigurationError(RuntimeError):
    pass


class _TemporalDown(Exception):
    pass


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, TemporalUnreachable):
        return True
    if isinstance(error, RPCError):
        return error.status in _TRANSIENT
    return isinstance(error, RuntimeError) and "connect" in str(error).lower()


class FindingListener:
    def __init__(
        self,
        client: Client,
        settings: IrflowSettings,
        queue_urls: list[str] | None = None,
        wait_seconds: int = 20,
        hold_seconds: int = 2,
        sqs: Any = None,
        s3: Any = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.queue_urls = list(queue_urls or settings.queue_urls)
        if not self.queue_urls:
            raise ListenerConfigurationError("no queue to listen to: set IRFLOW_QUEUE_URLS or pass --queue")
        self.wait_seconds = wait_seconds
        self.hold_seconds = hold_seconds
        self.stats = ListenerStats()
        pollers = len(self.queue_urls) * settings.listener_batches_in_flight
        # Long polls park a thread each; deletes and dead-lettering must not queue behind them.
        self._executor = ThreadPoolExecutor(max_workers=pollers + 16, thread_name_prefix="irflow-sqs")
        self._sqs = sqs or boto3.session.Session().client(
            "sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=pollers + 16)
        )
        # Detection windows, alert groups and dead-letter claims, shared by every listener through one table.
        self.shared_state: DynamoState | None = DynamoState(settings.state_table) if settings.state_table else None
        # Log files judged off the event loop (shared state only) get threads of their own: they wait on the
        # executor for S3, and a full executor waiting on itself would stall.
        self._log_file_threads = (
            ThreadPoolExecutor(max_workers=8, thread_name_prefix="irflow-log-files") if self.shared_state else None
        )
        self._dead_letters = DeadLetters(self._sqs_call, self.stats, self.shared_state, self._blocking)
        self._healthy = asyncio.Event()
        self._healthy.set()
        self._outage_started: float | None = None
        self._prober: asyncio.Task | None = None
        self._sqs_trouble_logged = False
        self.trust: TrustPolicy | None = None  # the accounts irflow answers for are known once `run` starts
        self.detector = None
        if settings.detection:
            from irflow.detection.detector import Detector

            self.detector = Detector(
                [Path(d) for d in settings.sigma_rules_dirs],
                min_severity=settings.detection_min_severity,
                disabled=settings.detection_disabled_rules,
                python_dirs=settings.python_rules_dirs,
                group_seconds=settings.detection_group_seconds,
                own_principals=own_principal_patterns(settings),  # and its own identity, found in `run`
                state=self.shared_state,
            )
            for item in self.detector.unsupported:
                log.warning("detection rule not loaded: %s: %s", item.source, item.reason)
            if self.detector.disabled:
                log.info("detection rules disabled by configuration: %s", ", ".join(self.detector.disabled))
        self._log_files = LogFileReader(settings, self._executor, self.stats, self.detector, s3)

    # --- running ---

    async def run(self, stop: asyncio.Event) -> ListenerStats:
        if self.shared_state is not None:
            await self._check_state_table(self.shared_state)
        for queue in self.queue_urls:
            self._dead_letters.targets[queue] = await self._resolve_dead_letter_queue(queue)
        if self.trust is None:
            self.trust = await self._trust_policy()
        log.info(
            "listening to %s (%d batch(es) of 10 in flight per queue, %ds long polls)",
            ", ".join(self.queue_urls),
            self.settings.listener_batches_in_flight,
            self.wait_seconds,
        )
        pollers = [
            asyncio.create_task(self._poll(queue, stop), name=f"poll-{queue}-{n}")
            for queue in self.queue_urls
            for n in range(self.settings.listener_batches_in_flight)
        ]
        try:
            await asyncio.gather(*pollers)
        finally:
            if self._prober:
                self._prober.cancel()
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._log_file_threads is not None:
                self._log_file_threads.shutdown(wait=False, cancel_futures=True)
        log.info("listener stopped: %s", json.dumps(self.stats.snapshot(), sort_keys=True))
        if self.shared_state is not None:
            log.info("state table %s: calls %s", self.shared_state.table, dict(self.shared_state.calls))
        if self.detector is not None:
            log.info(
                "detection: %d event(s); alerts %s; leads below the floor %s; grouped into earlier findings %s; "
                "irflow's own records skipped %s; tamper calls %s",
                self.detector.events,
                dict(self.detector.alerts),
                dict(self.detector.below_floor),
                dict(self.detector.grouped),
                dict(self.detector.own),
                dict(self.detector.tamper),
            )
        return self.stats

    async def _trust_policy(self) -> TrustPolicy:
        """Who the listener is (one sts:GetCallerIdentity): the accounts it answers for and, for detection,
        its own principal, whose CloudTrail events are irflow's and raise no alert."""
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(self._executor, own_identity)
        if identity is None:
            log.warning("cannot learn the listener's own identity (sts:GetCallerIdentity)")
        elif self.detector is not None:
            self.detector.own_principals = own_principal_patterns(self.settings, identity["Arn"])
        try:
            accounts, accounts_from = await loop.run_in_executor(
                self._executor, lambda: answered_accounts(self.settings, identity=identity)
            )
        except AccountsUnknown as error:
            raise ListenerConfigurationError(str(error)) from None
        shown = ", ".join(sorted(accounts)[:5]) + (f" and {len(accounts) - 5} more" if len(accounts) > 5 else "")
        log.info("answering for account(s) %s (%s)", shown, accounts_from)
        return TrustPolicy.from_settings(self.settings, accounts, accounts_from)

    async def _check_state_table(self, state: DynamoState) -> None:
        """A table that does not exist (or may not be read) is a configuration error, said at start: running on,
        each listener would decide alone, which is what the setting is there to prevent."""
        try:
            await self._blocking(lambda: state.probe())
        except Exception as error:  # noqa: BLE001 (any failure here is the operator's to fix)
            raise ListenerConfigurationError(f"cannot use the state table {state.table}: {error}") from None
        log.info("detection windows, alert groups and dead-letter claims shared in DynamoDB table %s", state.table)

    async def _blocking(self, call: Any) -> Any:
        """A blocking call (the state table's) on the listener's executor, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _sqs_call(self, method: str, **kwargs: Any) -> dict:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: getattr(self._sqs, method)(**kwargs))

    async def _resolve_dead_letter_queue(self, queue: str) -> str:
        if self.settings.dead_letter_queue_url:
            return self.settings.dead_letter_queue_url
        try:
            attributes = await self._sqs_call("get_queue_attributes", QueueUrl=queue, AttributeNames=["RedrivePolicy"])
        except (BotoCoreError, ClientError) as error:
            raise ListenerConfigurationError(f"cannot read queue {queue}: {error}") from None
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            raise ListenerConfigurationError(
                f"queue {queue} has no dead-letter queue: give it a redrive policy or set IRFLOW_DEAD_LETTER_QUEUE_URL"
            )
        target = json.loads(policy)["deadLetterTargetArn"]
        _, _, _, _, account, name = target.split(":", 5)
        found = await self._sqs_call("get_queue_url", QueueName=name, QueueOwnerAWSAccountId=account)
        return found["QueueUrl"]

    async def _poll(self, queue: str, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            if not self._healthy.is_set():
                await _first(self._healthy.wait(), stop.wait())
                continue
            try:
                response = await self._sqs_call(
                    "receive_message",
                    QueueUrl=queue,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_seconds,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp", "SenderId"],
                    MessageAttributeNames=["All"],
                )
            except Exception as error:  # noqa: BLE001 (a poller must outlive any receive failure)
                if not self._sqs_trouble_logged:
                    log.warning("cannot receive from %s (%s); retrying with backoff", queue, error)
                    self._sqs_trouble_logged = True
                await _first(asyncio.sleep(backoff), stop.wait())
                backoff = min(backoff * 2, 30)
                continue
            if self._sqs_trouble_logged:
                log.warning("receiving from %s again", queue)
                self._sqs_trouble_logged = False
            backoff = 1.0
            messages = response.get("Messages", [])
            if messages:
                # Messages in hand are finished even when stop arrives meanwhile.
                finished = await asyncio.gather(*(self._handle_safely(queue, m) for m in messages))
                await self._delete(queue, [m for m in finished if m is not None])

    async def _delete(self, queue: str, messages: list[dict]) -> None:
        """One DeleteMessageBatch for the messages of a receive that Temporal (or the dead-letter queue) has:
        two SQS calls per ten messages instead of eleven. One that is not deleted comes back after its
        visibility timeout and is handled again; findings already delivered are recognised as repeats."""
        # one receipt handle twice in a batch is refused (BatchEntryIdsNotDistinct): a message handed twice
        # with the same handle (the double-delivery tests do this) is deleted once
        messages = list({m["ReceiptHandle"]: m for m in messages}.values())
        if not messages:
            return
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
        try:
            response = await self._sqs_call("delete_message_batch", QueueUrl=queue, Entries=entries)
        except (BotoCoreError, ClientError) as error:
            log.warning("could not delete %d finished message(s): %s", len(messages), error)
            return
        self.stats.deleted += len(response.get("Successful", []))
        for failure in response.get("Failed", []):
            message = messages[int(failure["Id"])]
            log.warning("could not delete message %s: %s", message.get("MessageId"), failure.get("Message"))

    # --- one message ---

    async def _handle_safely(self, queue: str, message: dict) -> dict | None:
        """The message when it is finished and may be deleted; None when it must come back. An unexpected
        error leaves the message undeleted (it comes back) and the listener running."""
        try:
            return await self._handle(queue, message)
        except Exception:  # noqa: BLE001
            self.stats.errors += 1
            log.exception("unexpected error on message %s; it will be delivered again", message.get("MessageId"))
            return None

    async def _handle(self, queue: str, message: dict) -> dict | None:
        self.stats.received += 1
        received_at = datetime.now(UTC)
        assert self.trust is not None  # set by `run` before anything is received
        channel = Channel(queue=True, sender_id=message.get("Attributes", {}).get("SenderId"))
        if self.shared_state is not None and self.detector is not None:
            # shared, a qualifying event costs a round trip to the table: on the executor, not the event loop
            arrived = await self._blocking(lambda: unwrap_text_arrivals(message.get("Body", ""), self.detector))
        else:
            arrived = unwrap_text_arrivals(message.get("Body", ""), self.detector)
        # Untrusted sources are refused before any log file they name is read; every finding's account after.
        results = await self._expand_log_files(screen_sources(arrived, channel, self.trust))
        results = screen_accounts(results, self.trust)
        self.stats.findings += sum(1 for r in results if isinstance(r, ParsedFinding))
        problems = [r for r in results if isinstance(r, FindingRejected)]
        try:
            for result in results:
                if isinstance(result, ParsedFinding):
                    delivery_id = f"{message.get('MessageId', '?')}:{result.finding.raw_sha256[:16]}"
                    problem = await self._deliver(result, received_at, queue, delivery_id)
                    if problem:
                        problems.append(problem)
        except _TemporalDown:
            await self._hold(queue, message)
            return None
        if problems and not await self._dead_letters.send_once(queue, message, problems):
            return None
        return message

    async def _expand_log_files(self, results: list) -> list[ParsedFinding | FindingRejected]:
        """Findings in place of the log files a message names. Shared, the detector waits on the state table for each
        qualifying record: a log file is then read and judged on a loop of its own, on the executor, and this loop
        goes on delivering the other messages meanwhile."""
        if self._log_file_threads is None or not any(isinstance(r, LogFileReference) for r in results):
            return await self._log_files.expand(results)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._log_file_threads, lambda: asyncio.run(self._log_files.expand(results)))

    async def _deliver(
        self, parsed: ParsedFinding, received_at: datetime, queue: str, delivery_id: str
    ) -> FindingRejected | None:
        if isinstance(parsed, TamperFinding):  # before the filters: it only reaches incidents irflow opened
            return await self._deliver_tamper(parsed, received_at, queue, delivery_id)
        finding = parsed.finding
        reason = suppression_reason(finding, self.settings)
        if reason:
            self.stats.suppressed += 1
            self.stats.suppressed_by_reason[reason.split(" (")[0].split(":")[0]] += 1
            log.info("suppressed %s %s on %s: %s", finding.type, finding.id, self._shown_resource(finding), reason)
            return None
        try:
            submission = await submit(
                self.client, parsed, self.settings, received_at=received_at, origin=queue, delivery_id=delivery_id
            )
        except FindingRejected as rejected:
            return rejected
        except Exception as error:  # noqa: BLE001 (sorted below: transient errors hold, others reject)
            return self._temporal_failure(finding, error)
        self._temporal_is_back()
        if submission.joined:
            self.stats.joined += 1
        else:
            self.stats.started += 1
        log.info(
            "%s %s for %s %s",
            "joined" if submission.joined else "started",
            submission.incident_id,
            finding.type,
            finding.id,
        )
        return None

    async def _deliver_tamper(
        self, tampered: TamperFinding, received_at: datetime, queue: str, delivery_id: str
    ) -> FindingRejected | None:
        """A tamper finding joins every running incident guarding what the call touched; none guarding it, the
        call was ordinary administration: counted, logged, and the message is finished."""
        finding = tampered.finding
        try:
            delivery = await deliver_tamper(
                self.client, tampered, received_at=received_at, origin=queue, delivery_id=delivery_id
            )
        except Exception as error:  # noqa: BLE001 (as for submit: transient errors hold, others reject)
            return self._temporal_failure(finding, error)
        self._temporal_is_back()
        touched = ", ".join(delivery.handles)  # handles show identities only hashed
        if delivery.reached:
            self.stats.tamper_joined += len(delivery.reached)
            log.info("tamper %s on %s joined %s", finding.type, touched, ", ".join(delivery.reached))
        else:
            self.stats.tamper_unguarded += 1
            log.info("tamper %s on %s: no running incident guards it; nothing to do", finding.type, touched)
        return None

    def _temporal_failure(self, finding: Finding, error: Exception) -> FindingRejected:
        """A transient error is an outage (raises `_TemporalDown`: the message is held); any other rejects."""
        if _is_transient(error):
            self._enter_outage(error)
            raise _TemporalDown from error
        return FindingRejected(
            "submission_failed", f"could not hand finding {finding.id} to Temporal: {type(error).__name__}: {error}"
        )

    def _shown_resource(self, finding: Finding) -> str:
        """The resource as the incident would show it (log lines are never encrypted): the router decides what
        names a principal and is shown only hashed; a finding it cannot route shows only the hash."""
        try:
            return route(finding, self.settings.playbook_overrides).shown_id
        except FindingRejected:  # a misconfigured override: submit would dead-letter it with the reason
            return shown_resource_id(finding.resource.resource_id or "", personal=True)

    # --- Temporal outages ---

    async def _hold(self, queue: str, message: dict) -> None:
        """Give the message back to the queue soon; it is received again once Temporal answers."""
        self.stats.held += 1
        # If this fails the message comes back after the queue's own visibility timeout instead.
        with contextlib.suppress(BotoCoreError, ClientError):
            await self._sqs_call(
                "change_message_visibility",
                QueueUrl=queue,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=self.hold_seconds,
            )

    def _enter_outage(self, error: BaseException) -> None:
        if self._outage_started is not None:
            return
        self._outage_started = time.monotonic()
        self.stats.outages += 1
        self._healthy.clear()
        reason = getattr(error, "reason", None) or " ".join(str(error).split())[:200]
        log.warning("Temporal unreachable (%s): holding messages and retrying with backoff", reason)
        self._prober = asyncio.create_task(self._probe_until_back())

    def _temporal_is_back(self) -> None:
        if self._outage_started is None:
            return
        log.warning(
            "Temporal reachable again after %.1fs; %d message(s) were held",
            time.monotonic() - self._outage_started,
            self.stats.held,
        )
        self._outage_started = None
        self._healthy.set()

    async def _probe_until_back(self) -> None:
        backoff = 1.0
        while self._outage_started is not None:
            await asyncio.sleep(backoff)
            try:
                await self.client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=_seconds(5))
            except Exception:  # noqa: BLE001 (still down: keep probing quietly)
                backoff = min(backoff * 2, 15)
                continue
            self._temporal_is_back()


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


async def _first(*awaitables) -> None:
    """Wait until the first of `awaitables` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
