"""Fault injection: activities that stand in for a real one (same name, same argument type) and fail in a
chosen way."""

from __future__ import annotations

import typing
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import all_activities
from irflow.models.ec2 import Ec2StepInput
from irflow.models.incident import StepResult


def _name(candidate: Callable) -> str:
    return activity._Definition.must_from_callable(candidate).name


def _replace(name: str, stand_in) -> list:
    activities = [a for a in all_activities() if _name(a) != name]
    assert len(activities) == len(all_activities()) - 1, f"no activity named {name}"
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


def failing_after_acting(name: str) -> list:
    """The step does its work, then fails for good: the worst case for compensation."""
    act = real(name)

    def stand_in(step) -> StepResult:
        act(step)
        raise ApplicationError(f"injected failure after {name} acted", type="InjectedFailure", non_retryable=True)

    return _replace(name, activity.defn(name=name)(_takes_what(act, stand_in)))


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
