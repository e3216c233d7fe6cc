"""IAM for an EC2 instance: its instance profile removed or swapped for the quarantine profile, and its
role's sessions issued before containment denied everything (moto)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import boto3
import pytest

from activities.iam import replace_instance_profile, restore_instance_profile, revoke_role_sessions
from irflow.devstack.demo import IMAGE_ID
from irflow.models.settings import get_settings
from tests.activities.ec2_support import (
    INCIDENT_ID,
    ISSUED_BEFORE,
    ec2_target,
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance


def revocation_policy(workload) -> dict:
    iam = boto3.client("iam", region_name=workload.region)
    document = iam.get_role_policy(RoleName=workload.role_name, PolicyName=f"irflow-revoke-sessions-{INCIDENT_ID}")
    document = document["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


@pytest.fixture
def no_quarantine_profile(workload, monkeypatch) -> None:
    for name in ("IRFLOW_FORENSIC_EGRESS", "IRFLOW_QUARANTINE_INSTANCE_PROFILE"):  # the dev stack sets both
        monkeypatch.delenv(name)
    get_settings.cache_clear()


def test_replace_instance_profile_removes_the_profile_without_a_quarantine_profile(
    workload, target, no_quarantine_profile
):
    assert observed_instance(workload)["profiles"] != []
    assert replace_instance_profile(step_input(target)).changed is True
    assert observed_instance(workload)["profiles"] == []


@pytest.fixture
def quarantine_profile(workload, monkeypatch) -> str:
    iam = boto3.client("iam", region_name=workload.region)
    arn = iam.create_instance_profile(InstanceProfileName="irflow-quarantine-profile")["InstanceProfile"]["Arn"]
    monkeypatch.setenv("IRFLOW_QUARANTINE_INSTANCE_PROFILE", "irflow-quarantine-profile")
    get_settings.cache_clear()
    return arn


def test_replace_instance_profile_swaps_in_the_configured_quarantine_profile(workload, target, quarantine_profile):
    step = step_input(target)
    assert replace_instance_profile(step).changed is True
    assert observed_instance(workload)["profiles"] == [quarantine_profile]
    assert replace_instance_profile(step).changed is False
    before_profile = step.prior.instance_profile.profile_arn
    restore_instance_profile(step)
    assert observed_instance(workload)["profiles"] == [before_profile]


@pytest.fixture
def bare_instance(workload) -> str:
    """An instance launched without an instance profile, in the workload's subnet."""
    ec2 = boto3.client("ec2", region_name=workload.region)
    launched = ec2.run_instances(
        ImageId=IMAGE_ID, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=workload.subnet_ids[0]
    )
    return launched["Instances"][0]["InstanceId"]


def profiles_of(workload, instance_id: str) -> list[str]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    return sorted(a["IamInstanceProfile"]["Arn"] for a in associations if a["State"] == "associated")


def test_an_instance_without_a_profile_gets_the_quarantine_profile_and_the_undo_takes_it_away(
    workload, bare_instance, quarantine_profile
):
    """With forensic egress the SSM agent needs credentials to take the memory capture: the quarantine profile."""
    step = step_input(ec2_target(workload, bare_instance))
    assert step.prior.instance_profile is None
    replaced = replace_instance_profile(step)
    assert replaced.changed is True and replaced.detail["profile"] == "irflow-quarantine-profile"
    assert "no profile" in replaced.detail["reason"]
    assert profiles_of(workload, bare_instance) == [quarantine_profile]
    assert replace_instance_profile(step).changed is False
    assert profiles_of(workload, bare_instance) == [quarantine_profile]

    restored = restore_instance_profile(step)
    assert restored.changed is True and restored.detail["removed"] == quarantine_profile
    assert profiles_of(workload, bare_instance) == []
    assert restore_instance_profile(step).changed is False


def test_an_instance_without_a_profile_keeps_none_without_a_quarantine_profile(
    workload, bare_instance, no_quarantine_profile
):
    step = step_input(ec2_target(workload, bare_instance))
    assert replace_instance_profile(step).changed is False
    assert restore_instance_profile(step).changed is False
    assert profiles_of(workload, bare_instance) == []


def test_the_undo_leaves_a_profile_that_is_not_the_quarantine_profile(workload, bare_instance, quarantine_profile):
    """Someone gave the instance a profile of their own after containment: not irflow's to take away."""
    step = step_input(ec2_target(workload, bare_instance))
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": workload.instance_profile}, InstanceId=bare_instance)
    theirs = profiles_of(workload, bare_instance)
    assert restore_instance_profile(step).changed is False
    assert profiles_of(workload, bare_instance) == theirs


@pytest.mark.parametrize(
    "issued_before",
    [ISSUED_BEFORE, ISSUED_BEFORE.astimezone(timezone(timedelta(hours=-5)))],
    ids=["utc", "other-zone"],
)
def test_revoke_role_sessions_denies_everything_to_older_tokens(workload, target, issued_before):
    step = step_input(target).model_copy(update={"issued_before": issued_before})
    assert revoke_role_sessions(step).changed is True
    [statement] = revocation_policy(workload)["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*" and statement["Resource"] == "*"
    iso_z = ISSUED_BEFORE.isoformat().replace("+00:00", "Z")
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": iso_z}}
    assert observed_instance(workload)["role_policies"] == [f"irflow-revoke-sessions-{INCIDENT_ID}"]
