"""What every readiness check shares: its verdict, and the decorator that makes a check an activity.

A check's body looks at one thing and returns a `Verdict`: pass, fail (with the fix a person follows) or unknown.
`readiness_check` turns the body into an `@aws_activity` taking a `ReadinessScope` and returning one
`CheckResult`, and keeps the promise every check makes: it never raises for what it finds. A refused call
(AccessDenied), a member role that cannot be assumed, an endpoint that does not implement the call: each becomes
`unknown` at once, with the reason as evidence. What may pass on its own (throttling, a 5xx, a timeout) is raised
instead, so Temporal retries the activity and one blip does not flap a notification; the ReadinessWorkflow turns
an activity that still fails into `unknown`, and `checked` (a check run as a plain function, `irflow preflight`)
does at once.

Where a check looks (its `reach`, see activities/readiness.py `checks_for`):
- `scope`: in every account and region of the round;
- `security`: in each region of the security account (the intake stack lives there);
- `member`: in each region of a member account (the member role);
- `global`: once per round (the evidence bucket, the KMS keys, the SNS topics, the worker's permissions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import ACCESS_CODES, aws_activity, error_code, error_message, transient
from irflow.models.readiness import CheckResult, CheckStatus, ReadinessScope
from irflow.models.settings import get_settings

Reach = Literal["scope", "security", "member", "global"]


class Verdict(NamedTuple):
    status: CheckStatus
    evidence: str
    fix: str = ""
    required: bool | None = None  # None: the check's own default
    problems: tuple[str, ...] = ()  # what is wrong, item by item (CheckResult.problems)


def passed(evidence: str, required: bool | None = None) -> Verdict:
    return Verdict(CheckStatus.PASS, evidence, "", required)


def failed(evidence: str, fix: str, required: bool | None = None, problems: Iterable[str] = ()) -> Verdict:
    """A failure; `problems` are the stable items of what is wrong when several things can be (a missing action, a
    rule's name), never anything that changes from one look to the next."""
    return Verdict(CheckStatus.FAIL, evidence, fix, required, tuple(problems))


def unknown(evidence: str, required: bool | None = None) -> Verdict:
    return Verdict(CheckStatus.UNKNOWN, evidence, "", required)


class Check(Protocol):
    """A readiness check: an activity (`scope` in, one `CheckResult` out) with what describes it."""

    check_id: str
    title: str
    required: bool
    reach: Reach
    global_check: bool
    __name__: str

    def __call__(self, scope: ReadinessScope) -> CheckResult: ...


def described_error(error: BaseException) -> str:
    """Why a check could not tell, in one line."""
    if isinstance(error, ClientError):
        code = error_code(error)
        operation = getattr(error, "operation_name", "") or "a call"
        if code in ACCESS_CODES:
            return f"not allowed to look: {operation} answered {code}: {error_message(error)}"
        return f"{operation} answered {code}: {error_message(error)}"
    if isinstance(error, ApplicationError):
        return f"{error.type}: {error}" if error.type else str(error)
    if isinstance(error, BotoCoreError):
        return f"AWS did not answer: {error}"
    if isinstance(error, NotImplementedError):
        return f"this AWS endpoint does not implement the call: {error}"
    return f"the check could not finish: {type(error).__name__}: {error}"


def _verdict_of(body: Callable[[ReadinessScope], Verdict], scope: ReadinessScope, check_id: str) -> Verdict:
    try:
        return body(scope)
    except (ClientError, BotoCoreError, ApplicationError, NotImplementedError) as error:
        if transient(error):
            raise  # Temporal retries the activity
        return unknown(described_error(error))
    except Exception as error:  # noqa: BLE001 (a check reports; one broken check must not end the round)
        logging.getLogger("irflow.readiness").exception("readiness check %s failed", check_id)
        return unknown(described_error(error))


def _result(
    check_id: str, title: str, reach: Reach, required: bool, scope: ReadinessScope, verdict: Verdict
) -> CheckResult:
    """The check's verdict where it looked: a `global` check names the security account and no region."""
    where = (
        {"account_id": get_settings().security_account_id, "region": ""}
        if reach == "global"
        else {"account_id": scope.account_id, "region": scope.region}
    )
    failing = verdict.status == CheckStatus.FAIL
    return CheckResult(
        check=check_id,
        title=title,
        status=verdict.status,
        required=required if verdict.required is None else verdict.required,
        evidence=verdict.evidence,
        fix=verdict.fix if failing else "",
        problems=sorted(set(verdict.problems)) if failing else [],
        **where,
    )


def checked(check: Check, scope: ReadinessScope) -> CheckResult:
    """`check(scope)` outside Temporal: what it raises (a transient error, see `readiness_check`) is `unknown`
    here, there being nobody to retry it."""
    try:
        return check(scope)
    except Exception as error:  # noqa: BLE001 (only transient errors get here: the round goes on)
        return _result(check.check_id, check.title, check.reach, check.required, scope, unknown(described_error(error)))


def readiness_check(
    check_id: str, title: str, *iam_actions: str, reach: Reach = "scope", required: bool = True
) -> Callable[[Callable[[ReadinessScope], Verdict]], Check]:
    """Make `body(scope) -> Verdict` the activity `check_<id with _>` declaring `iam_actions` (read-only ones). A
    transient AWS error (`activities.aws.transient`) is raised for Temporal to retry; any other becomes `unknown`.

    The result names the scope's account and region; a `global` check names the security account
    (IRFLOW_SECURITY_ACCOUNT_ID, empty: the worker's own) and no region, so its key stays the same whichever
    scope it ran in."""

    def wrap(body: Callable[[ReadinessScope], Verdict]) -> Check:
        name = "check_" + check_id.replace(".", "_")

        def check(scope: ReadinessScope) -> CheckResult:
            if reach != "global" and not scope.region:
                verdict = unknown("no region to look in: set IRFLOW_READINESS_REGIONS or AWS_DEFAULT_REGION")
            else:
                verdict = _verdict_of(body, scope, check_id)
            return _result(check_id, title, reach, required, scope, verdict)

        check.__name__ = check.__qualname__ = name
        check.__doc__ = body.__doc__
        check.__module__ = body.__module__
        defined: Any = aws_activity(*iam_actions, name=name)(check)
        defined.check_id, defined.title, defined.required = check_id, title, required
        defined.reach, defined.global_check = reach, reach == "global"
        return defined

    return wrap
