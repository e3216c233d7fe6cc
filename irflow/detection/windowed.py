"""Windowed rules: thresholds and sequences per principal over an event-time window, with bounded memory.

Each rule keeps state per principal (userIdentity.arn, else accessKeyId) in an LRU-capped OrderedDict,
each principal holding at most `max_events` recent events. A rule alerts once per window per principal:
after an alert it stays quiet for that principal until `window_seconds` of event time have passed.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from irflow.detection.rules import Alert, Event, Rule
from irflow.models.finding import Severity

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
