"""The one doorway to AWS: clients, error typing, and the registry of activities with their IAM actions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

# Temporal retries activities with backoff; botocore's own retries only smooth over single hiccups.
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def client(service: str, region: str | None) -> Any:
    """A cached boto3 client. Clients are thread-safe; sessions are not, so each gets its own.

    `region=None` takes the default region of the environment (AWS_DEFAULT_REGION)."""
    key = (service, region or "")
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = boto3.session.Session().client(service, region_name=region, config=_BOTO_CONFIG)
            _clients[key] = found
        return found


def reset_clients() -> None:
    """Forget cached clients (tests switch between in-process moto and a moto server)."""
    with _clients_lock:
        _clients.clear()


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
