"""How the workflow names the activities it calls by reference."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from activities import all_activities
from irflow.models.errors import NON_RETRYABLE_TYPES
from workflows import readiness
from workflows.activity_options import INTERACTIVE, QUICK, SLOW, UNDO, activity_name, retry


def test_every_activity_is_registered_under_its_own_function_name():
    """The record, the report and fault injection name an action by `activity_name`: it must be the name
    Temporal schedules it under."""
    for function in all_activities():
        assert activity._Definition.must_from_callable(function).name == activity_name(function)


def test_undos_retry_longer_than_containment_steps():
    assert UNDO["retry_policy"].maximum_attempts > QUICK["retry_policy"].maximum_attempts
    assert SLOW["heartbeat_timeout"] < SLOW["start_to_close_timeout"], "a long step must show it is alive"


def test_the_house_retry_backs_off_to_its_cap_and_never_retries_a_final_error():
    """Every kind of work (QUICK, UNDO, the readiness checks) retries the same way, only its tries and cap differ."""
    policy = retry(3, 5)
    assert (policy.maximum_attempts, policy.initial_interval, policy.maximum_interval) == (
        3,
        timedelta(seconds=1),
        timedelta(seconds=5),
    )
    assert set(NON_RETRYABLE_TYPES) <= set(policy.non_retryable_error_types or ())
    for options in (QUICK, UNDO, SLOW, INTERACTIVE, readiness.CHECK, readiness.NEEDED):
        assert options["retry_policy"].non_retryable_error_types == policy.non_retryable_error_types
        assert options["retry_policy"].backoff_coefficient == policy.backoff_coefficient
    assert readiness.CHECK["retry_policy"].maximum_attempts < readiness.NEEDED["retry_policy"].maximum_attempts
