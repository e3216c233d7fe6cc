"""How the workflow names the activities it calls by reference."""

from __future__ import annotations

from temporalio import activity

from activities import all_activities
from workflows.activity_options import QUICK, SLOW, UNDO, activity_name


def test_every_activity_is_registered_under_its_own_function_name():
    """The record, the report and fault injection name an action by `activity_name`: it must be the name
    Temporal schedules it under."""
    for function in all_activities():
        assert activity._Definition.must_from_callable(function).name == activity_name(function)


def test_undos_retry_longer_than_containment_steps():
    assert UNDO["retry_policy"].maximum_attempts > QUICK["retry_policy"].maximum_attempts
    assert SLOW["heartbeat_timeout"] < SLOW["start_to_close_timeout"], "a long step must show it is alive"
