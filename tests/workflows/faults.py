"""Fault injection: activities that stand in for a real one (same name) and fail in a chosen way."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import all_activities
from irflow.models.ec2 import Ec2StepInput
from irflow.models.iam import IamRoleStepInput, IamUserStepInput
from irflow.models.incident import StepResult
from irflow.models.lambda_function import LambdaStepInput
from irflow.models.rds import DbStepInput
from irflow.models.s3 import BucketStepInput

INPUT_TYPES = {
    "ec2": Ec2StepInput,
    "iam": IamUserStepInput,
    "iam-role": IamRoleStepInput,
    "s3": BucketStepInput,
    "lambda": LambdaStepInput,
    "rds": DbStepInput,
}


def _replace(name: str, stand_in) -> list:
    activities = [a for a in all_activities() if activity._Definition.must_from_callable(a).name != name]
    assert len(activities) == len(all_activities()) - 1, f"no activity named {name}"
    return [*activities, stand_in]


def real(name: str) -> Callable:
    for candidate in all_activities():
        if activity._Definition.must_from_callable(candidate).name == name:
            return candidate
    raise KeyError(name)


def failing_after_acting(name: str, input_type: str = "ec2") -> list:
    """The step does its work, then fails for good: the worst case for compensation."""
    act = real(name)

    def stand_in(step) -> StepResult:
        act(step)
        raise ApplicationError(f"injected failure after {name} acted", type="InjectedFailure", non_retryable=True)

    stand_in.__annotations__["step"] = INPUT_TYPES[input_type]
    return _replace(name, activity.defn(name=name)(stand_in))


def flaky_after_acting(names: list[str], input_type: str = "ec2") -> list:
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

            stand_in.__annotations__["step"] = INPUT_TYPES[input_type]
            return activity.defn(name=name)(stand_in)

        activities = [a for a in activities if activity._Definition.must_from_callable(a).name != name] + [make()]
    return activities


def with_side_effect(name: str, before: Callable[[Ec2StepInput], None]) -> list:
    """Run `before` (something happening in the account), then the real step."""
    act = real(name)

    @activity.defn(name=name)
    def stand_in(step: Ec2StepInput) -> StepResult:
        before(step)
        return act(step)

    return _replace(name, stand_in)
