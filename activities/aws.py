"""The one doorway to AWS: clients, error typing, and the registry of activities with their IAM actions."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from irflow.models.settings import get_settings

# Temporal retries activities with backoff; botocore's own retries only smooth over single hiccups.
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)

_clients: dict[tuple[str, str, str], tuple[Any, float]] = {}
_clients_lock = threading.Lock()
_own_identity: list[dict[str, str]] = []
# Every client is made from one boto3 session, so each service's model is loaded and parsed once per
# process (a fresh session per client re-reads it: 80-200 ms a client instead of ~45 ms). Sessions are
# not thread-safe, so clients are made one at a time; the clients themselves are thread-safe.
_session: list[boto3.session.Session] = []
_making_lock = threading.Lock()
# Assumed-role clients are replaced this long before their credentials expire.
_REFRESH_MARGIN_SECONDS = 300

# The services the activities call, in the order a first incident needs them: the worker makes these
# clients for its default region as it starts, so the first incident does not pay for loading them.
WARM_SERVICES = (
    "sns",
    "ec2",
    "autoscaling",
    "elbv2",
    "iam",
    "s3",
    "ssm",
    "sts",
    "lambda",
    "rds",
    "ecs",
    "eks",
    "ebs",
    "kms",
    "cloudtrail",
    "guardduty",
)


def _the_session() -> boto3.session.Session:
    if not _session:
        _session.append(boto3.session.Session())
    return _session[0]


def process_session() -> boto3.session.Session:
    """The session every client is made from: a handler registered on its `events` before a client is made sees
    every call that client makes (clients copy the session's handlers when they are made)."""
    with _making_lock:
        return _the_session()


def _make(service: str, region: str | None, credentials: dict[str, str] | None = None) -> Any:
    with _making_lock:
        made = _the_session().client(service, region_name=region, config=_BOTO_CONFIG, **(credentials or {}))
    service_event = made.meta.service_model.service_id.hyphenize()
    made.meta.events.register_first(f"needs-retry.{service_event}", _no_blind_repeat)
    return made


def _no_blind_repeat(operation: Any = None, caught_exception: BaseException | None = None, **_: Any) -> None:
    """A create whose answer was lost (the request went out, then it timed out or the connection closed) may well
    have happened: botocore would send it again at once and make a second snapshot or group. Such a call is not
    repeated here; the activity's own retry looks first (by the incident's tag) and acts only when it finds nothing.
    A call AWS deduplicates itself (an idempotency token) is repeated as usual."""
    if not isinstance(caught_exception, (ReadTimeoutError, ConnectionClosedError)) or operation is None:
        return
    if not operation.name.startswith(_NOT_REPEATABLE_PREFIXES) or "Tag" in operation.name:
        return
    members = operation.input_shape.members.values() if operation.input_shape is not None else ()
    if any(member.metadata.get("idempotencyToken") for member in members):
        return
    raise caught_exception


# Calls that make something new each time they are sent (a second CreateSnapshot is a second snapshot), but for
# tagging (CreateTags sets tags); the rest set a state (put, modify, delete), where the same request twice ends the
# same.
_NOT_REPEATABLE_PREFIXES = ("Create", "Copy", "Run", "Allocate")


def own_identity() -> dict[str, str]:
    """Who the worker's credentials are (sts:GetCallerIdentity: Account, Arn, UserId; needs no permission),
    asked once per process: the security account, the principal evidence records, irflow's own principal."""
    with _clients_lock:
        if _own_identity:
            return _own_identity[0]
    identity = _make("sts", None).get_caller_identity()
    with _clients_lock:
        _own_identity[:] = [{key: identity[key] for key in ("Account", "Arn", "UserId")}]
        return _own_identity[0]


def own_account_id() -> str:
    """The security account: IRFLOW_SECURITY_ACCOUNT_ID, else whoever the worker's credentials are."""
    return get_settings().security_account_id or own_identity()["Account"]


def member_role_arn(account_id: str, role_name: str | None = None) -> str:
    """The role irflow assumes in another account: the member role, or `role_name` (the forensic role)."""
    settings = get_settings()
    return f"arn:{settings.aws_partition}:iam::{account_id}:role/{role_name or settings.member_role_name}"


def assume(account_id: str, role_name: str | None, session_name: str, duration: int) -> tuple[dict[str, str], float]:
    """A fresh sts:AssumeRole of the member role (or `role_name`) in `account_id`, with IRFLOW_MEMBER_EXTERNAL_ID:
    (the keys a client is made with, when they expire). A refusal is raised as AWS gave it (ClientError)."""
    settings = get_settings()
    arguments = {
        "RoleArn": member_role_arn(account_id, role_name),
        "RoleSessionName": session_name,
        "DurationSeconds": duration,
    }
    if settings.member_external_id:
        arguments["ExternalId"] = settings.member_external_id
    credentials = client("sts", None).assume_role(**arguments)["Credentials"]
    keys = {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }
    return keys, credentials["Expiration"].timestamp()


def _assumed_credentials(account_id: str, role_name: str | None = None) -> tuple[dict[str, str], float]:
    try:
        return assume(account_id, role_name, "irflow-responder", get_settings().member_session_seconds)
    except ClientError as error:
        code = error_code(error)
        raise ApplicationError(
            f"cannot act in account {account_id}: assuming {member_role_arn(account_id, role_name)} failed: "
            f"{code}: {error_message(error) or error}",
            type=ACCESS_DENIED,
            non_retryable=code in ACCESS_CODES,
        ) from error


def make_client(service: str, region: str | None, credentials: dict[str, str] | None = None) -> Any:
    """A new client, not cached (with the process's retries and timeouts): `credentials` as `assume` gives them,
    or the worker's own. Most code wants `client`."""
    return _make(service, region, credentials)


class InAccount(Protocol):
    """Any target: where a resource lives."""

    region: str
    account_id: str


def client(service: str, region: str | None, account_id: str | None = None, role_name: str | None = None) -> Any:
    """A cached boto3 client (thread-safe; made from the process's one session, one at a time).

    `region=None` takes the default region of the environment (AWS_DEFAULT_REGION). `account_id` names
    the account the call acts in: the security account (None, or the worker's own account) uses the
    worker's credentials; any other account is reached by assuming IRFLOW_MEMBER_ROLE_NAME there (or
    `role_name`, e.g. the forensic account's role).
    Evidence always goes through the security account's clients."""
    member = account_id if account_id and account_id != own_account_id() else ""
    key = (service, region or "", member, role_name or "")
    now = time.time()
    with _clients_lock:
        found = _clients.get(key)
        if found is not None and found[1] - _REFRESH_MARGIN_SECONDS > now:
            return found[0]
    if member:
        credentials, expires = _assumed_credentials(member, role_name)
        made = _make(service, region, credentials)
    else:
        made, expires = _make(service, region), float("inf")
    with _clients_lock:
        _clients[key] = (made, expires)
    return made


def warm_clients(region: str | None = None, services: tuple[str, ...] = WARM_SERVICES) -> float:
    """Make the security account's clients ahead of the first incident; returns the seconds it took.

    A service that cannot be loaded is skipped (the activity that needs it reports the error itself)."""
    started = time.monotonic()
    for service in services:
        try:
            client(service, region)
        except Exception as error:  # noqa: BLE001 (warming is an optimisation; activities surface errors)
            logging.getLogger("irflow.aws").warning("could not prepare the %s client: %s", service, error)
    return time.monotonic() - started


def reset_clients() -> None:
    """Forget cached clients and the session (tests switch between in-process moto and a moto server)."""
    with _clients_lock:
        _clients.clear()
        _own_identity.clear()
    with _making_lock:
        _session.clear()


# --- Failures are typed: business errors stop retries, everything else Temporal retries with backoff. ---

from irflow.models.errors import (  # noqa: E402
    ACCESS_DENIED,
    EVIDENCE_INTEGRITY,
    INVALID_REQUEST,
    NOT_CONFIGURED,
    NOT_FOUND,
)

__all__ = ["ACCESS_DENIED", "EVIDENCE_INTEGRITY", "INVALID_REQUEST", "NOT_CONFIGURED", "NOT_FOUND"]

_NOT_FOUND_CODES = {
    "InvalidInstanceID.NotFound",
    "InvalidInstanceID.Malformed",
    "InvalidNetworkInterfaceID.NotFound",
    "InvalidVolume.NotFound",
    "InvalidSnapshot.NotFound",
    "InvalidSnapshotID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidAssociationID.NotFound",
    "NoSuchEntity",
    "NoSuchBucket",
    "TargetGroupNotFound",
    "NotFound",
    "ResourceNotFoundException",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
}
# Codes that mean "you may not" (SNS says AuthorizationError, EC2 UnauthorizedOperation).
ACCESS_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
}
# Codes of a call worth making again (botocore's throttled and transient codes): with a 429 or a 5xx status, what
# `transient` tells apart from a refusal.
_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
}
_INVALID_CODES = {
    "InvalidTarget",
    "ValidationError",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "MalformedPolicyDocument",
}


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def error_message(error: ClientError) -> str:
    """AWS's message of a refused call ("" when it gave none)."""
    return error.response.get("Error", {}).get("Message", "")


def transient(error: BaseException) -> bool:
    """The call may well succeed when made again: throttled, a 5xx, a timeout or a connection that failed (botocore
    has retried it already; Temporal retries the activity). A refusal, a validation error or a missing resource is
    not. A member role that could not be assumed is transient when its cause is."""
    if isinstance(error, ApplicationError):
        return error.__cause__ is not None and transient(error.__cause__)
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(error) in _TRANSIENT_CODES or status == 429 or status >= 500
    return isinstance(error, (BotoConnectionError, HTTPClientError))


def not_found(what: str) -> ApplicationError:
    return ApplicationError(what, type=NOT_FOUND, non_retryable=True)


@contextmanager
def typed_aws_errors(doing: str) -> Iterator[None]:
    """Turn AWS errors that retrying cannot fix into non-retryable, typed ApplicationErrors."""
    try:
        yield
    except ParamValidationError as error:  # botocore refused the request before sending it: it never will
        raise ApplicationError(f"{doing}: {error}", type=INVALID_REQUEST, non_retryable=True) from error
    except ClientError as error:
        code = error_code(error)
        text = f"{doing}: {code}: {error_message(error) or error}"
        if code in _NOT_FOUND_CODES:
            raise ApplicationError(text, type=NOT_FOUND, non_retryable=True) from error
        if code in ACCESS_CODES:
            # Which call was refused: what a responder grants (EC2's message does not say it).
            refused = f"{doing}: {error.operation_name} refused: {code}: {error_message(error) or error}"
            raise ApplicationError(refused, type=ACCESS_DENIED, non_retryable=True) from error
        if code in _INVALID_CODES:
            raise ApplicationError(text, type=INVALID_REQUEST, non_retryable=True) from error
        raise


def without_metadata(response: Any) -> Any:
    """A response as evidence keeps it: boto3's ResponseMetadata describes the call (request id, retries), not
    the resource."""
    if isinstance(response, dict):
        response.pop("ResponseMetadata", None)
    return response


def best_effort(call: Callable[[], Any]) -> Any:
    """The response, or the error written down in its place: in evidence, that an API could not be read is a
    fact too, and one part that cannot be read must not cost the others."""
    try:
        return without_metadata(call())
    except ClientError as error:
        return {"error": f"{error_code(error)}: {error_message(error)}"}
    except ApplicationError as error:  # a helper that already typed the AWS error
        return {"error": f"{error.type}: {error}"}


# --- Every activity declares the IAM actions it uses; infra/worker-policy.json is generated from this. ---

F = TypeVar("F", bound=Callable[..., Any])

_registry: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}


def aws_activity(*iam_actions: str, name: str | None = None) -> Callable[[F], F]:
    """`activity.defn` that also records the IAM actions the activity needs."""

    def wrap(fn: F) -> F:
        activity_name = name or fn.__name__
        defined = activity.defn(name=activity_name)(fn)
        defined.iam_actions = tuple(sorted(set(iam_actions)))  # type: ignore[attr-defined]
        _registry[activity_name] = (defined, defined.iam_actions)  # type: ignore[attr-defined]
        return defined

    return wrap


def registered_activities() -> dict[str, tuple[Callable[..., Any], tuple[str, ...]]]:
    return dict(_registry)


def tag_pairs(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """AWS's `[{"Key": …, "Value": …}]` (Tags, TagList, TagSet) as a dict; an absent list is no tags."""
    return {t["Key"]: t.get("Value", "") for t in tags or []}


def heartbeat(*details: Any) -> None:
    """Heartbeat when running inside an activity; a no-op when a test calls the function directly, and in a
    local activity (it has no heartbeat: the workflow task it runs in is its liveness)."""
    if activity.in_activity() and not activity.info().is_local:
        activity.heartbeat(*details)


# Independent AWS calls of one activity, side by side. A call made from one of these threads runs its own
# calls one after another (see side_by_side), so the pool never waits on itself.
_SIDE_BY_SIDE_THREADS = "irflow-aws-side-by-side"
_side_by_side = ThreadPoolExecutor(max_workers=16, thread_name_prefix=_SIDE_BY_SIDE_THREADS)
Made = TypeVar("Made")


def side_by_side(*calls: Callable[[], Made]) -> list[Made]:
    """Run independent calls (each a round trip or a short chain of them) at once: the wall time is the slowest
    chain's, not the sum. Results in order; when any raised, the first error is raised after all have ended
    (nothing is left running behind a failed activity). Each call runs in a copy of the caller's context."""
    if len(calls) <= 1 or threading.current_thread().name.startswith(_SIDE_BY_SIDE_THREADS):
        return [call() for call in calls]
    futures = [_side_by_side.submit(contextvars.copy_context().run, call) for call in calls]
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
