"""How long activities may take and how they retry, by kind of work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from irflow.models.errors import NON_RETRYABLE_TYPES


def retry(attempts: int, max_interval_s: int) -> RetryPolicy:
    """The house retry: from one second, doubling up to `max_interval_s`, `attempts` tries in all, never for an
    error irflow raises as final (NON_RETRYABLE_TYPES)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=max_interval_s),
        maximum_attempts=attempts,
        non_retryable_error_types=NON_RETRYABLE_TYPES,
    )


# Containment retries briefly and then fails over to compensation; undos retry for much longer,
# because an undo that gives up leaves a resource half-restored.
QUICK = {"start_to_close_timeout": timedelta(seconds=60), "retry_policy": retry(6, 10)}
# An undo heartbeats while it waits (every poll, at most 10 s apart): a worker that dies mid-undo is noticed
# after the heartbeat timeout and the undo retried elsewhere, not after the whole start-to-close timeout with
# the resource half-restored meanwhile.
UNDO = {
    "start_to_close_timeout": timedelta(seconds=120),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": retry(25, 60),
}
SLOW = {
    "start_to_close_timeout": timedelta(minutes=30),
    "heartbeat_timeout": timedelta(seconds=90),
    "retry_policy": retry(5, 60),
}
# Someone is waiting for the answer (a decision's proof at STS): a short timeout, a few quick retries while
# STS is unreachable. A refused proof is raised non-retryable by the activity itself.
INTERACTIVE = {"start_to_close_timeout": timedelta(seconds=15), "retry_policy": retry(3, 4)}


# Containment at the speed of the API: a short idempotent AWS call runs as a local activity, in the worker
# that runs the workflow task, with no round trip through the server to schedule it, hand it to an activity
# worker and report it back (docs/playbooks.md, "Containment at the speed of the API"). Its result is a
# marker in history like any activity's; a worker that dies mid-call leaves the workflow task to be retried,
# and the call runs again (every step is idempotent). Retries as QUICK does.
LOCAL = {**QUICK, "local": True}

# A local activity's result reaches history only when its workflow task completes. Analysis run locally in the same
# task as containment leaves a worker that dies (or a task that times out) after a change and before the task
# completed to a replay that reads the resource again, finds it contained, and keeps that as the prior state every
# undo restores: a rejected incident would "restore" the quarantine (issue 16). What the first, fastest steps need
# is recorded on the resource before they act (isolation: activities/ec2_containment.py; the key:
# activities/iam_user.py); the rest of a prior state, too large for tags, is read through the server, its result in
# history before the steps that change it act. Incidents that read it locally on an older worker replay as they ran.
PRIOR_STATE_SETTLED = "issue-16-prior-state-settled"


def analysis_options() -> dict[str, Any]:
    """How to run an activity that reads the prior state some containment step will change."""
    return QUICK if workflow.patched(PRIOR_STATE_SETTLED) else LOCAL


async def execute(activity: Callable[..., Any], argument: Any, options: dict[str, Any]) -> Any:
    """Run one activity with `options`: locally when they say `local` (LOCAL), else through the server.

    Either way a failure is an `ActivityError` whose cause is the activity's own error: a local activity's
    failure arrives bare (the server never wrapped it), and is wrapped here so that every caller (the record,
    compensation, the error's type) treats both kinds alike."""
    if not options.get("local"):
        return await workflow.execute_activity(activity, argument, **options)
    if "heartbeat_timeout" in options:  # a local activity has no heartbeat: its liveness would be lost unsaid
        raise ValueError(f"{activity_name(activity)}: a local activity cannot have a heartbeat timeout")
    rest = {k: v for k, v in options.items() if k != "local"}
    try:
        return await workflow.execute_local_activity(activity, argument, **rest)
    except (ActivityError, CancelledError):
        raise
    except FailureError as failure:
        raise ActivityError(
            f"local activity {activity_name(activity)} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=activity_name(activity),
            activity_id="",
            retry_state=None,
        ) from failure


def activity_name(activity: Callable[..., Any]) -> str:
    """The name an activity function is registered under: its own name (no activity is renamed, and a test
    keeps it so), which is what the record, the report and fault injection call it."""
    return activity.__name__
