"""IAM for an EC2 instance: its instance profile removed or swapped for the quarantine profile, and its
role's sessions issued before containment denied everything (moto)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import boto3
import pytest

from activities.iam import replace_instance_profile, restore_instance_profile, revoke_role_sessions
from irflow.models.settings import get_settings
from tests.activities.ec2_support import (
    INCIDENT_ID,
    ISSUED_BEFORE,
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance


def revocation_policy(workload) -> dict:
    iam = boto3.client("iam", region_name=workload.region)
    document = iam.get_role_policy(RoleName=workload.role_name, PolicyName=f"irflow-revoke-sessions-{INCIDENT_ID}")
    document = document["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def test_replace_instance_profile_removes_the_profile_by_default(workload, target):
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
