"""Windowed rules: thresholds and sequences per principal over an event-time window, with bounded memory.

Each rule keeps state per principal (userIdentity.arn, else accessKeyId) in an LRU-capped OrderedDict,
each principal holding at most `max_events` recent events. A rule alerts once per window per principal:
after an alert it stays quiet for that principal until `window_seconds` of event time have passed.

That state is one process's. With IRFLOW_STATE_TABLE set, `share` hands the rules a shared state (a DynamoDB table,
`irflow.detection.shared_state`) and any number of listeners count one window together: each qualifying event is
one atomic update of the table, and the listener whose conditional write marks the window alerted is the only one
to alert. The rule keeps its own window beside it: the alert lists the events this listener saw, and when the
table cannot be reached, the rule decides on them alone, as a lone listener would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from irflow.detection.rules import Alert, Event, Rule
from irflow.detection.shared_state import SharedState, StateUnavailable
from irflow.models.finding import Severity

log = logging.getLogger(__name__)

# The table forgets a window this long after its last event (wall clock: late log files arrive minutes late).
KEEP_MARGIN_SECONDS = 3600
# A new-address rule remembers a user's addresses this long after their last login.
ADDRESS_MEMORY_SECONDS = 90 * 86400
# A value this listener recorded in the shared window within this fraction of the window is not written again:
# the window counts distinct values, and a script repeating one call must not cost a round trip per call.
REFRESH_FRACTION = 0.05
REMEMBERED_WRITES = 50_000
# Superseded or expired entries in a shared window are deleted once this many have gathered.
PRUNE_AT = 32

_last_time: tuple[str, float | None] = ("", None)  # consecutive events mostly share their second


def event_seconds(event: Event) -> float | None:
    """eventTime as POSIX seconds, or None when missing or unparseable."""
    global _last_time
    value = event.get("eventTime")
    if value.__class__ is not str:
        return None
    text, seconds = _last_time
    if value == text:
        return seconds
    try:
        seconds = datetime.fromisoformat(value).timestamp()  # Python 3.11 reads the trailing Z
    except ValueError:
        seconds = None
    _last_time = (value, seconds)
    return seconds


def principal(event: Event) -> str | None:
    identity = event.get("userIdentity")
    if not isinstance(identity, dict):
        return None
    return identity.get("arn") or identity.get("accessKeyId") or identity.get("principalId")


@dataclass
class WindowedRule(Rule):
    """Base for rules with bounded per-principal state keyed by `principal(event)`."""

    window_seconds: float = 600.0
    max_principals: int = 10_000
    max_events: int = 1_000
    kind: str = "windowed"
    _state: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False, compare=False)
    shared: SharedState | None = field(default=None, repr=False, compare=False)

    def share(self, state: SharedState) -> None:
        """Keep the windows in `state`, with every listener given the same. Called before the first event; the
        in-memory path (`observe`) stays untouched for listeners that share nothing."""
        self.shared = state
        self._lock = threading.Lock()  # the listener may evaluate on several threads once the state is shared
        self._failures = 0
        self._written: OrderedDict[tuple[str, str], float] = OrderedDict()  # (principal, value) → event time
        # an instance attribute: the engine takes `rule.observe` when it first indexes an event kind
        self.observe = self._observe_shared  # type: ignore[method-assign]

    def _observe_shared(self, event: Event) -> Alert | None:
        raise NotImplementedError

    def _unavailable(self, error: StateUnavailable) -> None:
        self._failures += 1
        if self._failures & (self._failures - 1) == 0:  # 1st, 2nd, 4th…: visible without flooding the log
            log.warning(
                "rule %s: shared state unavailable (%d time(s)); deciding on this listener's events: %s",
                self.rule_id,
                self._failures,
                error,
            )

    def _slot(self, key: str, factory: Callable[[], Any]) -> Any:
        state = self._state
        slot = state.get(key)
        if slot is None:
            slot = factory()
            state[key] = slot
            if len(state) > self.max_principals:
                state.popitem(last=False)  # least recently seen principal
        else:
            state.move_to_end(key)
        return slot

    def reset(self) -> None:
        self._state.clear()

    def matches(self, event: Event) -> bool:  # windowed rules decide in observe()
        return False

    def indexed_test(self) -> None:
        return None


class _Window:
    """Recent qualifying events of one principal, oldest first, at most `max_events`."""

    __slots__ = ("events", "last_alert")

    def __init__(self) -> None:
        self.events: deque[tuple[float, Event]] = deque()
        self.last_alert: float | None = None

    def add(self, now: float, event: Event, max_events: int, horizon: float) -> int:
        events = self.events
        if len(events) >= max_events:
            events.popleft()
        events.append((now, event))
        while events[0][0] < horizon:
            events.popleft()
        return len(events)

    def matching(self) -> tuple[Event, ...]:
        return tuple(e for _, e in self.events)


class _DistinctWindow:
    """The distinct values one principal touched recently, each with the time and event it was last seen,
    least recently seen first, at most `max_events` values: counting distinct values is O(1) per event."""

    __slots__ = ("last_alert", "seen")

    def __init__(self) -> None:
        self.seen: OrderedDict[Any, tuple[float, Event]] = OrderedDict()
        self.last_alert: float | None = None

    def add(self, now: float, values: tuple[Any, ...], event: Event, max_events: int, horizon: float) -> int:
        seen = self.seen
        for value in values:
            if value in seen:
                seen.move_to_end(value)
            seen[value] = (now, event)
            if len(seen) > max_events:
                seen.popitem(last=False)
        while seen and next(iter(seen.values()))[0] < horizon:
            seen.popitem(last=False)
        return len(seen)

    def matching(self) -> tuple[Event, ...]:
        events: dict[int, Event] = {}
        for _, event in self.seen.values():  # one event may carry several values: list it once
            events.setdefault(id(event), event)
        return tuple(events.values())


def _members(value: Any) -> tuple[Any, ...]:
    """A frozenset counts each of its members; None counts nothing."""
    if value is None:
        return ()
    if isinstance(value, frozenset):
        return tuple(value)
    return (value,)


@dataclass
class ThresholdRule(WindowedRule):
    """Alert when one principal makes >= `threshold` qualifying calls (distinct by `distinct`, if given)
    within `window_seconds`; then stay quiet for that principal for a window."""

    threshold: int = 5
    include: Callable[[Event], bool] | None = None  # extra filter after the source/name index
    distinct: Callable[[Event], Any] | None = None  # count distinct values of this, else every event

    def observe(self, event: Event) -> Alert | None:
        if self.include is not None and not self.include(event):
            return None
        key = principal(event)
        now = event_seconds(event)
        if key is None or now is None:
            return None
        state = self._state
        window = state.get(key)
        if window is None:
            window = state[key] = _Window() if self.distinct is None else _DistinctWindow()
            if len(state) > self.max_principals:
                state.popitem(last=False)  # least recently seen principal
        else:
            state.move_to_end(key)
        horizon = now - self.window_seconds
        if self.distinct is None:
            count = window.add(now, event, self.max_events, horizon)
        else:
            values = _members(self.distinct(event))
            if not values:
                return None
            count = window.add(now, values, event, self.max_events, horizon)
        if count < self.threshold:
            return None
        if window.last_alert is not None and 0 <= now - window.last_alert < self.window_seconds:
            return None
        window.last_alert = now
        return self.alert(window.matching())

    def _observe_shared(self, event: Event) -> Alert | None:
        assert self.shared is not None
        with self._lock:
            alone = ThresholdRule.observe(self, event)  # this listener's window: the alert's events, the fallback
        if self.include is not None and not self.include(event):
            return None
        key = principal(event)
        now = event_seconds(event)
        if key is None or now is None:
            return None
        values = (event.get("eventID") or _digest(event),) if self.distinct is None else _members(self.distinct(event))
        fresh = self._unwritten(key, {_digest(v): now for v in values}, now)
        if not fresh:
            return None
        try:
            alerted = self._shared_alert(f"window#{self.rule_id}#{key}", now, fresh)
        except StateUnavailable as error:
            with self._lock:  # not written after all: the next sighting tries again
                for digest in fresh:
                    self._written.pop((key, digest), None)
            self._unavailable(error)
            return alone
        if not alerted:
            return None
        with self._lock:
            window = self._state.get(key)
            events = window.matching() if window is not None else (event,)
        return self.alert(events or (event,))

    def _unwritten(self, key: str, digests: dict[str, float], now: float) -> dict[str, float]:
        """The values this listener has not written to the shared window lately (and marks them written)."""
        written = self._written
        fresh = {}
        with self._lock:
            for digest, at in digests.items():
                earlier = written.get((key, digest))
                # an earlier event time than the one written adds nothing: the window keeps each value's latest
                if earlier is not None and now - earlier < self.window_seconds * REFRESH_FRACTION:
                    continue
                fresh[digest] = at
                written[(key, digest)] = now
                written.move_to_end((key, digest))
                if len(written) > REMEMBERED_WRITES:
                    written.popitem(last=False)
        return fresh

    def _shared_alert(self, key: str, now: float, fresh: dict[str, float]) -> bool:
        assert self.shared is not None
        horizon = now - self.window_seconds
        view = self.shared.window_add(key, fresh, horizon, time.time() + self.window_seconds + KEEP_MARGIN_SECONDS)
        surplus = sorted(view.latest, key=view.latest.__getitem__)[: max(0, len(view.latest) - self.max_events)]
        if len(view.stale) >= PRUNE_AT or surplus:
            self.shared.window_forget(key, [*view.stale, *(f"{d}@{view.latest[d]!r}" for d in surplus)])
        if len(view.latest) < self.threshold:
            return False
        last = view.alerted_at
        if last is not None and 0 <= now - last < self.window_seconds:
            return False
        return self.shared.claim_alert(key, now, self.window_seconds)


@dataclass
class NewAddressThenRule(WindowedRule):
    """A successful ConsoleLogin from an address not seen before for that user, then one of
    `event_names` (other than ConsoleLogin) by the same principal within `window_seconds`."""

    max_addresses: int = 32

    def observe(self, event: Event) -> Alert | None:
        key = principal(event)
        now = event_seconds(event)
        if key is None or now is None:
            return None
        if event.get("eventName") == "ConsoleLogin":
            if (event.get("responseElements") or {}).get("ConsoleLogin") != "Success":
                return None
            address = event.get("sourceIPAddress")
            slot = self._slot(key, lambda: {"addresses": OrderedDict(), "login": None})
            seen: OrderedDict[str, None] = slot["addresses"]
            if address not in seen:
                slot["login"] = (now, event)
            seen[address] = None
            seen.move_to_end(address)
            if len(seen) > self.max_addresses:
                seen.popitem(last=False)
            return None
        if event.get("errorCode"):
            return None
        slot = self._state.get(key)
        if not slot or slot["login"] is None:
            return None
        login_time, login = slot["login"]
        if 0 <= now - login_time <= self.window_seconds:
            slot["login"] = None  # once per login
            return self.alert((login, event))
        return None

    def _observe_shared(self, event: Event) -> Alert | None:
        assert self.shared is not None
        with self._lock:
            alone = NewAddressThenRule.observe(self, event)  # this listener's view: the fallback
        key = principal(event)
        now = event_seconds(event)
        if key is None or now is None:
            return None
        shared_key = f"login#{self.rule_id}#{key}"
        try:
            if event.get("eventName") == "ConsoleLogin":
                if (event.get("responseElements") or {}).get("ConsoleLogin") == "Success":
                    address = str(event.get("sourceIPAddress") or "-")
                    keep = time.time() + ADDRESS_MEMORY_SECONDS
                    self.shared.note_login(shared_key, address, now, event, keep, self.max_addresses)
                return None
            if event.get("errorCode"):
                return None
            login = self.shared.take_login(shared_key, now, self.window_seconds)  # once per login, listeners over
        except StateUnavailable as error:
            self._unavailable(error)
            return alone
        return self.alert((login, event)) if login is not None else None


def _digest(value: Any) -> str:
    """A short stable name for a counted value (a secret's name, a call, an event): the same in every process."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=9).hexdigest()


def _request(event: Event, key: str) -> Any:
    return (event.get("requestParameters") or {}).get(key)


_ENUM_PREFIXES = ("List", "Describe", "Get")
# Calls every console page and SDK makes on its own; they say nothing about discovery.
_ENUM_IGNORE = frozenset({"GetCallerIdentity", "GetSessionToken", "Decrypt", "GetBucketLocation", "GetObject"})


def _enumeration_call(event: Event) -> bool:
    name = event.get("eventName") or ""
    if not name.startswith(_ENUM_PREFIXES) or name in _ENUM_IGNORE:
        return False
    identity = event.get("userIdentity") or {}
    if identity.get("type") in ("AWSService", "AWSAccount") or identity.get("invokedBy"):
        return False
    agent = event.get("userAgent") or ""
    return (
        "console.amazonaws.com" not in agent
        and "AWS Internal" not in agent
        and event.get("sessionCredentialFromConsole") != "true"
    )


def _parameter_names(event: Event) -> frozenset[str]:
    names = _request(event, "names")
    single = _request(event, "name")
    found = [n for n in (names if isinstance(names, list) else []) if isinstance(n, str)]
    if isinstance(single, str):
        found.append(single)
    return frozenset(found)


def _service_name(event: Event) -> tuple[str, str]:
    return (event.get("eventSource") or "", event.get("eventName") or "")


def windowed_rules() -> list[WindowedRule]:
    """Fresh instances (each holds its own state)."""
    return [
        ThresholdRule(
            rule_id="irflow.cloudtrail.secrets-burst",
            title="Burst of Secrets Manager secret retrievals by one principal",
            severity=Severity.HIGH,
            finding_type="CredentialAccess:IAMUser/SecretsBurst",
            event_sources=frozenset({"secretsmanager.amazonaws.com"}),
            event_names=frozenset({"GetSecretValue"}),
            description="One principal read at least 5 distinct secrets within 10 minutes.",
            window_seconds=600,
            threshold=5,
            distinct=lambda e: _request(e, "secretId"),
        ),
        ThresholdRule(
            rule_id="irflow.cloudtrail.ec2-password-data-burst",
            title="Burst of EC2 GetPasswordData calls by one principal",
            severity=Severity.HIGH,
            finding_type="CredentialAccess:IAMUser/PasswordDataBurst",
            event_sources=frozenset({"ec2.amazonaws.com"}),
            event_names=frozenset({"GetPasswordData"}),
            description="One principal asked for Windows password data at least 5 times within 10 minutes.",
            window_seconds=600,
            threshold=5,
        ),
        ThresholdRule(
            rule_id="irflow.cloudtrail.ssm-parameters-burst",
            title="Burst of decrypted SSM parameter reads by one principal",
            severity=Severity.MEDIUM,
            finding_type="CredentialAccess:IAMUser/ParameterBurst",
            event_sources=frozenset({"ssm.amazonaws.com"}),
            event_names=frozenset({"GetParameter", "GetParameters"}),
            description="One principal decrypted at least 10 distinct SSM parameters within 10 minutes.",
            window_seconds=600,
            threshold=10,
            include=lambda e: _request(e, "withDecryption") is True,
            distinct=_parameter_names,
        ),
        ThresholdRule(
            rule_id="irflow.cloudtrail.enumeration-burst",
            title="Enumeration burst: many distinct List/Describe/Get calls by one principal",
            severity=Severity.MEDIUM,
            finding_type="Discovery:IAMUser/EnumerationBurst",
            description="One principal made at least 30 distinct List*/Describe*/Get* calls within 60 seconds, "
            "outside the console.",
            window_seconds=60,
            threshold=30,
            max_events=200,
            name_prefixes=_ENUM_PREFIXES,
            include=_enumeration_call,
            distinct=_service_name,
        ),
        NewAddressThenRule(
            rule_id="irflow.cloudtrail.new-address-login-then-stop-logging",
            title="Console login from a new address followed by disabling logging",
            severity=Severity.CRITICAL,
            finding_type="DefenseEvasion:IAMUser/CloudTrailStoppedAfterNewLogin",
            event_names=frozenset(
                {"ConsoleLogin", "StopLogging", "DeleteTrail", "PutEventSelectors", "DeleteDetector", "UpdateDetector"}
            ),
            description="A console login from an address not seen before for that user was followed within an hour "
            "by a change that blinds CloudTrail or GuardDuty.",
            window_seconds=3600,
        ),
    ]
