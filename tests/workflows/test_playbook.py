"""The playbook base: the one containment loop every playbook runs, driven by its steps, seen through the
narrow context a playbook gets (a stand-in context here: no Temporal, no AWS)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from activities.tagging import restore_resource_tags, tag_resource
from irflow.models.incident import StepResult
from irflow.models.tagging import TaggableKind, TagRequest
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS
from workflows.iam_role_playbook import IAM_ROLE_CONTAINMENT_STEPS
from workflows.iam_user_playbook import IAM_USER_CONTAINMENT_STEPS
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS
from workflows.playbook import TAG_STEP, ContainmentStep, Playbook
from workflows.rds_playbook import RDS_CONTAINMENT_STEPS, SNAPSHOT_STEP
from workflows.s3_bucket_playbook import S3_CONTAINMENT_STEPS

EVERY_PLAYBOOKS_STEPS = {
    "ec2": EC2_CONTAINMENT_STEPS,
    "iam-user": IAM_USER_CONTAINMENT_STEPS,
    "iam-role": IAM_ROLE_CONTAINMENT_STEPS,
    "s3": S3_CONTAINMENT_STEPS,
    "lambda": LAMBDA_CONTAINMENT_STEPS,
    "rds": RDS_CONTAINMENT_STEPS,
}


def lock(step_input):
    return StepResult(changed=True)


def unlock(step_input):
    return StepResult(changed=True)


def seal(step_input):
    return StepResult(changed=True)


class StandInIncident:
    """Records what the loop asks of its incident, in order; fails the activity named in `failing`."""

    def __init__(self, failing: str | None = None) -> None:
        self.failing = failing
        self.calls: list[tuple[str, str, Any]] = []
        self.notes: list[str] = []

    def register_undo(self, step: str, undo, argument) -> None:
        self.calls.append(("register", step, undo.__name__))

    async def act(self, activity, argument, options) -> Any:
        self.calls.append(("act", activity.__name__, argument))
        if activity.__name__ == self.failing:
            raise ActivityError(
                "failed",
                scheduled_event_id=1,
                started_event_id=2,
                identity="test",
                activity_type=activity.__name__,
                activity_id="1",
                retry_state=RetryState.NON_RETRYABLE_FAILURE,
            ) from ApplicationError("injected", non_retryable=True)
        return activity(argument)

    def note(self, event: str) -> None:
        self.notes.append(event)


class Vault(Playbook):
    name = "vault"
    containment_steps = (ContainmentStep(lock, unlock), ContainmentStep(seal, None))

    def __init__(self, incident) -> None:
        super().__init__(incident)
        self.done: list[str] = []
        self.failed: list[str] = []

    def containment_input(self) -> str:
        return "the vault as it was"

    def step_done(self, step, result) -> None:
        self.done.append(step.name)

    def step_failed(self, step) -> None:
        self.failed.append(step.name)


async def test_each_undo_is_registered_before_its_step_acts():
    incident = StandInIncident()
    vault = Vault(incident)
    await vault.contain()
    assert incident.calls == [
        ("register", "lock", "unlock"),
        ("act", "lock", "the vault as it was"),
        ("act", "seal", "the vault as it was"),  # a step without an undo registers none
    ]
    assert vault.done == ["lock", "seal"] and vault.failed == []


async def test_a_failing_step_stops_containment_with_its_undo_already_registered():
    incident = StandInIncident(failing="lock")
    vault = Vault(incident)
    with pytest.raises(ActivityError):
        await vault.contain()
    assert incident.calls == [("register", "lock", "unlock"), ("act", "lock", "the vault as it was")]
    assert vault.failed == ["lock"] and vault.done == []


@pytest.mark.parametrize("kind", EVERY_PLAYBOOKS_STEPS)
def test_every_playbook_marks_the_resource_first_and_can_undo_every_change(kind):
    steps = EVERY_PLAYBOOKS_STEPS[kind]
    # The instance is isolated first (containment at the speed of the API), then tagged with the other steps.
    assert steps[1 if kind == "ec2" else 0] is TAG_STEP
    changes_without_undo = [s.name for s in steps if s.undo is None and s is not SNAPSHOT_STEP]
    assert changes_without_undo == [], "only evidence (the RDS snapshot) may stay on rejection"
    assert len({s.name for s in steps}) == len(steps)


def test_the_tag_step_takes_a_tag_request_made_from_the_step_input(workload):
    from activities.ec2_context import describe_instance_context
    from irflow.models.ec2 import Ec2StepInput, Ec2Target

    target = Ec2Target(
        incident_id="inc-1", account_id=workload.account_id, region=workload.region, instance_id=workload.instance_id
    )
    step_input = Ec2StepInput(target=target, prior=describe_instance_context(target))
    request = TAG_STEP.argument(step_input)
    assert isinstance(request, TagRequest)
    assert (request.incident_id, request.account_id, request.region) == ("inc-1", workload.account_id, workload.region)
    assert [(r.kind, r.name) for r in request.resources] == [(TaggableKind.EC2_INSTANCE, workload.instance_id)]
    assert (TAG_STEP.activity, TAG_STEP.undo) == (tag_resource, restore_resource_tags)
    assert (TAG_STEP.name, TAG_STEP.undo_name) == ("tag_resource", "restore_resource_tags")
    assert EC2_CONTAINMENT_STEPS[0].argument(step_input) is step_input, "other steps take the step input itself"
