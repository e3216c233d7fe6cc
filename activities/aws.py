"""The one doorway to AWS: clients, error typing, and the registry of activities with their IAM actions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.settings import get_settings

# Temporal retries activities with backoff; botocore's own retries only smooth over single hiccups.
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)

_clients: dict[tuple[str, str, str], tuple[Any, float]] = {}
_clients_lock = threading.Lock()
_own_account: list[str] = []
# Assumed-role clients are replaced this long before their credentials expire.
_REFRESH_MARGIN_SECONDS = 300


def own_account_id() -> str:
    """The security account: IRFLOW_SECURITY_ACCOUNT_ID, else whoever the worker's credentials are."""
    configured = get_settings().security_account_id
    if configured:
        return configured
    with _clients_lock:
        if _own_account:
            return _own_account[0]
    sts = boto3.session.Session().client("sts", config=_BOTO_CONFIG)
    account = sts.get_caller_identity()["Account"]
    with _clients_lock:
        _own_account[:] = [account]
    return account


def member_role_arn(account_id: str) -> str:
    settings = get_settings()
    return f"arn:{settings.aws_partition}:iam::{account_id}:role/{settings.member_role_name}"


def _assumed_session(account_id: str) -> tuple[Any, float]:
    settings = get_settings()
    arguments = {
        "RoleArn": member_role_arn(account_id),
        "RoleSessionName": "irflow-responder",
        "DurationSeconds": settings.member_session_seconds,
    }
    if settings.member_external_id:
        arguments["ExternalId"] = settings.member_external_id
    sts = boto3.session.Session().client("sts", config=_BOTO_CONFIG)
    try:
        credentials = sts.assume_role(**arguments)["Credentials"]
    except ClientError as error:
        code = error_code(error)
        raise ApplicationError(
            f"cannot act in account {account_id}: assuming {arguments['RoleArn']} failed: {code}: {error}",
            type=ACCESS_DENIED,
            non_retryable=code in _ACCESS_CODES or code == "AccessDenied",
        ) from error
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return session, credentials["Expiration"].timestamp()


class InAccount(Protocol):
    """Any target: where a resource lives."""

    region: str
    account_id: str


def client(service: str, region: str | None, account_id: str | None = None) -> Any:
    """A cached boto3 client. Clients are thread-safe; sessions are not, so each gets its own.

    `region=None` takes the default region of the environment (AWS_DEFAULT_REGION). `account_id` names
    the account the call acts in: the security account (None, or the worker's own account) uses the
    worker's credentials; any other account is reached by assuming IRFLOW_MEMBER_ROLE_NAME there.
    Evidence always goes through the security account's clients."""
    member = account_id if account_id and account_id != own_account_id() else ""
    key = (service, region or "", member)
    now = time.time()
    with _clients_lock:
        found = _clients.get(key)
        if found is not None and found[1] - _REFRESH_MARGIN_SECONDS > now:
            return found[0]
    if member:
        session, expires = _assumed_session(member)
    else:
        session, expires = boto3.session.Session(), float("inf")
    made = session.client(service, region_name=region, config=_BOTO_CONFIG)
    with _clients_lock:
        _clients[key] = (made, expires)
    return made


def reset_clients() -> None:
    """Forget cached clients (tests switch between in-process moto and a moto server)."""
    with _clients_lock:
        _clients.clear()
        _own_account.clear()


# --- Failures are typed: business errors stop retries, everything else Temporal retries with backoff. ---

from models.errors import ACCESS_DENIED, INVALID_REQUEST, NOT_CONFIGURED, NOT_FOUND  # noqa: E402

__all__ = ["ACCESS_DENIED", "INVALID_REQUEST", "NOT_CONFIGURED", "NOT_FOUND"]

_NOT_FOUND_CODES = {
    "InvalidInstanceID.NotFound",
    "InvalidInstanceID.Malformed",
    "InvalidNetworkInterfaceID.NotFound",
    "InvalidVolume.NotFound",
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
_ACCESS_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
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


def not_found(what: str) -> ApplicationError:
    return ApplicationError(what, type=NOT_FOUND, non_retryable=True)


@contextmanager
def typed_aws_errors(doing: str) -> Iterator[None]:
    """Turn AWS errors that retrying cannot fix into non-retryable, typed ApplicationErrors."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        text = f"{doing}: {code}: {message}"
        if code in _NOT_FOUND_CODES:
            raise ApplicationError(text, type=NOT_FOUND, non_retryable=True) from error
        if code in _ACCESS_CODES:
            raise ApplicationError(text, type=ACCESS_DENIED, non_retryable=True) from error
        if code in _INVALID_CODES:
            raise ApplicationError(text, type=INVALID_REQUEST, non_retryable=True) from error
        raise


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


def heartbeat(*details: Any) -> None:
    """Heartbeat when running inside an activity; a no-op when a test calls the function directly."""
    if activity.in_activity():
        activity.heartbeat(*details)
