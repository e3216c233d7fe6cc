"""Fault injection: activities that stand in for a real one (same name, same argument type) and fail in a
chosen way."""

from __future__ import annotations

import json
import random
import threading
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber as moto_stubber
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import all_activities, aws
from irflow.models.ec2 import Ec2StepInput
from irflow.models.incident import StepResult


def _name(candidate: Callable) -> str:
    return activity._Definition.must_from_callable(candidate).name


def _replace(name: str, stand_in, among: list | None = None) -> list:
    among = all_activities() if among is None else among
    activities = [a for a in among if _name(a) != name]
    assert len(activities) == len(among) - 1, f"no activity named {name}"
    return [*activities, stand_in]


def real(name: str) -> Callable:
    for candidate in all_activities():
        if _name(candidate) == name:
            return candidate
    raise KeyError(name)


def _takes_what(act: Callable, stand_in: Callable) -> Callable:
    """The stand-in takes what the real activity takes, so the payload converter builds the same model."""
    hints = typing.get_type_hints(act)
    argument = next(key for key in hints if key != "return")
    stand_in.__annotations__["step"] = hints[argument]
    return stand_in


def failing_after_acting(name: str, among: list | None = None) -> list:
    """The step does its work, then fails for good: the worst case for compensation."""
    act = real(name)

    def stand_in(step) -> StepResult:
        act(step)
        raise ApplicationError(f"injected failure after {name} acted", type="InjectedFailure", non_retryable=True)

    return _replace(name, activity.defn(name=name)(_takes_what(act, stand_in)), among)


def flaky_after_acting(names: list[str]) -> list:
    """Each named step does its work and then fails once with a retryable error (a lost response)."""
    activities = all_activities()
    for name in names:
        act = real(name)

        def make(act=act, name=name):
            def stand_in(step):
                result = act(step)
                if activity.info().attempt == 1:
                    raise ApplicationError(f"injected: response of {name} lost", type="InjectedTransient")
                return result

            return activity.defn(name=name)(_takes_what(act, stand_in))

        activities = [a for a in activities if _name(a) != name] + [make()]
    return activities


def with_side_effect(name: str, before: Callable[[Ec2StepInput], None]) -> list:
    """Run `before` (something happening in the account), then the real step."""
    act = real(name)

    @activity.defn(name=name)
    def stand_in(step: Ec2StepInput) -> StepResult:
        before(step)
        return act(step)

    return _replace(name, stand_in)


def failing_for_good(name: str, among: list | None = None) -> list:
    """The activity fails every time without acting (an undo AWS keeps refusing), in place of the real one `among`
    the activities given (all by default: stand-ins combine)."""
    act = real(name)

    def stand_in(step) -> StepResult:
        raise ApplicationError(f"injected: {name} refused for good", type="InjectedFailure", non_retryable=True)

    return _replace(name, activity.defn(name=name)(_takes_what(act, stand_in)), among)


# --- faults at the wire: every AWS call the activities make, as AWS (or the network) can fail it ---


@dataclass(frozen=True)
class Injected:
    service: str
    operation: str
    kind: str
    attempt: int
    last_attempt: bool  # botocore gives up after this one: the activity sees the fault


@dataclass
class _Denial:
    service: str
    operation: str
    code: str
    message: str
    when: Callable[[bytes], bool]


# What AWS answers when it throttles, by protocol (service id, as botocore hyphenates it, or the request's shape).
_THROTTLED = {"ec2": (503, "RequestLimitExceeded"), "s3": (503, "SlowDown"), "query": (400, "Throttling")}
_MUTATING = ("Create", "Copy", "Put", "Modify", "Update", "Attach", "Detach", "Delete", "Tag", "Untag", "Replace")


class AwsFaults:
    """Throttling, 5xx answers, timeouts and lost answers on a share of the AWS calls the activities make, chosen
    by a seeded RNG: the n-th call of an operation meets the same fault in every run (which call is n-th can differ
    where calls run at once).

    It sits in botocore's `before-send`, in moto's place, so every attempt botocore makes meets it and botocore's
    own retries are exercised; in an activity's first attempt, a share of the faults stays for every attempt of a
    call, which botocore then gives up on and the activity (retried by Temporal) sees. A "lost answer" lets the
    call reach AWS and then times out, as a response lost on the way back does; no other fault lets it reach AWS."""

    def __init__(self, seed: int = 16, rate: float = 0.2, stays: float = 0.3) -> None:
        self.seed, self.rate, self.stays = seed, rate, stays
        self.injected: list[Injected] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self._denials: list[_Denial] = []
        self._lost: Counter[tuple[str, str]] = Counter()
        self._staying: dict[int, str] = {}  # thread → the fault its call in progress meets on every attempt
        self._lock = threading.Lock()

    def install(self) -> AwsFaults:
        """On the activities' session (its clients made afresh, so each carries the handler), in moto's place:
        botocore calls every `before-send` handler, so moto would carry out a call that meets a fault too; this
        hands moto the calls that meet none."""
        aws.reset_clients()
        events = aws.process_session().events
        events.unregister("before-send", moto_stubber)
        events.register_first("before-send", self)
        return self

    def deny(self, service: str, operation: str, code: str, message: str, when=lambda body: True) -> None:
        """Every call of `operation` whose request body passes `when` is refused (403 `code`)."""
        self._denials.append(_Denial(service, operation, code, message, when))

    def lose_answers(self, service: str, operation: str, times: int = 1) -> None:
        """The first `times` calls of `operation` reach AWS and their answers are lost (a read timeout)."""
        self._lost[service, operation] = times

    def count(self, service: str | None = None, kind: str | None = None, escaped: bool | None = None) -> int:
        return sum(
            1
            for i in self.injected
            if (service is None or i.service == service)
            and (kind is None or i.kind == kind)
            and (escaped is None or i.last_attempt == escaped)
        )

    def __call__(self, event_name: str, request: AWSPreparedRequest, **_) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        attempt, most = _attempt(request)
        body = _bytes(request.body)
        with self._lock:
            if attempt == 1:
                self.calls[service, operation] += 1
            kind = self._choose(service, operation, attempt, most, body)
            if kind is None:
                return moto_stubber(event_name, request)
            self.injected.append(Injected(service, operation, kind, attempt, attempt >= most))
        return _fault(kind, service, operation, request, body, self._denial(service, operation, body))

    def _denial(self, service: str, operation: str, body: bytes) -> _Denial | None:
        return next(
            (d for d in self._denials if (d.service, d.operation) == (service, operation) and d.when(body)), None
        )

    def _choose(self, service: str, operation: str, attempt: int, most: int, body: bytes) -> str | None:
        if self._denial(service, operation, body):
            return "denied"
        if self._lost[service, operation] > 0:
            self._lost[service, operation] -= 1
            return "lost answer"
        thread = threading.get_ident()
        if attempt > 1 and thread in self._staying:
            return self._staying[thread]
        self._staying.pop(thread, None)
        if service == "sts":  # the worker's own identity, asked once as it starts: not what this is about
            return None
        rng = random.Random(f"{self.seed}:{service}:{operation}:{self.calls[service, operation]}:{attempt}")
        if rng.random() >= self.rate:
            return None
        kinds = ["throttled", "500", "503", "read timeout", "connect timeout"]
        if operation.startswith(_MUTATING):
            kinds.append("lost answer")
        kind = rng.choice(kinds)
        if attempt == 1 and most > 1 and rng.random() < self.stays and _first_try():
            self._staying[thread] = kind
        return kind


def _first_try() -> bool:
    """Outside an activity, or in its first attempt: a fault stays only there, so Temporal's retry of the activity
    meets faults botocore can absorb, and a test ends rather than exhausting the retry policy by chance."""
    return not activity.in_activity() or activity.info().attempt == 1


def _attempt(request: AWSPreparedRequest) -> tuple[int, int]:
    """botocore's attempt number and its most attempts, from the header it sends with every attempt."""
    header = request.headers.get("amz-sdk-request", b"")
    fields = dict(
        part.strip().split("=", 1)
        for part in (header.decode() if isinstance(header, bytes) else header).split(";")
        if "=" in part
    )
    return int(fields.get("attempt", 1)), int(fields.get("max", 1))


def _bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes):
        return body
    return b""  # a stream (an object's bytes): nothing a denial looks at


def _fault(kind: str, service: str, operation: str, request, body: bytes, denial: _Denial | None):
    if kind in ("read timeout", "lost answer"):
        if kind == "lost answer":
            answered = moto_stubber(f"before-send.{service}.{operation}", request)
            assert answered is not None, f"{service}.{operation} did not reach moto"
        raise ReadTimeoutError(endpoint_url=request.url)
    if kind == "connect timeout":
        raise ConnectTimeoutError(endpoint_url=request.url)
    protocol = _protocol(service, request, body)
    if kind == "denied":
        assert denial is not None
        return _answer(request, protocol, 403, denial.code, denial.message)
    if kind == "throttled":
        status, code = _THROTTLED.get(protocol, (400, "ThrottlingException"))
        return _answer(request, protocol, status, code, "Rate exceeded (injected)")
    status = int(kind)
    code = {500: "InternalError", 503: "ServiceUnavailable"}[status]
    return _answer(request, protocol, status, code, "injected server error")


def _protocol(service: str, request, body: bytes) -> str:
    if service in ("ec2", "s3"):
        return service
    content_type = request.headers.get("Content-Type", b"")
    content_type = content_type.decode() if isinstance(content_type, bytes) else content_type
    return "query" if "x-www-form-urlencoded" in content_type or body.startswith(b"Action=") else "json"


def _answer(request, protocol: str, status: int, code: str, message: str) -> AWSResponse:
    headers = {"x-amzn-RequestId": "injected-fault"}
    if protocol == "ec2":
        text = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>injected-fault</RequestID></Response>"
        )
    elif protocol == "s3":
        text = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>injected</RequestId></Error>"
    elif protocol == "query":
        text = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>injected-fault</RequestId></ErrorResponse>"
        )
    else:
        headers |= {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.1"}
        text = json.dumps({"__type": code, "message": message, "Message": message})
    return AWSResponse(request.url, status, headers, MockRawResponse(text))
