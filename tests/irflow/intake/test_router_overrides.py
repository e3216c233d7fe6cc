"""Playbook overrides: IRFLOW_PLAYBOOK_OVERRIDES globs over finding types, in their order, win over the routing
table; one naming a playbook this version does not run, or one that cannot contain the resource, goes to triage
saying why; one naming no playbook at all is refused."""

from __future__ import annotations

import json
import os
from fnmatch import fnmatchcase

import pytest

import irflow.intake.router as router
from irflow.intake.router import ALL_PLAYBOOKS, EC2_PLAYBOOK, RDS_PLAYBOOK, S3_PLAYBOOK, TRIAGE_PLAYBOOK, route
from irflow.models.finding import FindingRejected
from irflow.models.settings import IrflowSettings
from tests.irflow.intake.router_support import (
    ACCESS_KEY,
    ACCOUNT,
    INSTANCE_ID,
    REGION,
    USER_NAME,
    _finding,
    _user_finding,
)


def test_a_glob_override_wins_over_the_table():
    portscan = _finding("Recon:EC2/Portscan")
    overrides = {"Recon:EC2/*": TRIAGE_PLAYBOOK}
    destination = route(portscan, overrides)
    assert route(portscan).playbook == EC2_PLAYBOOK
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "Recon:EC2/*" in destination.reason
    # Still one incident per instance, under triage.
    assert destination.resource_id == INSTANCE_ID
    assert destination.incident_key == f"triage-instance-{ACCOUNT}-{REGION}-{INSTANCE_ID}"
    assert route(_finding("Backdoor:EC2/C&CActivity.B"), overrides).playbook == EC2_PLAYBOOK


@pytest.mark.parametrize(
    ("overrides", "playbook"),
    [
        ({"Recon:EC2/*": TRIAGE_PLAYBOOK, "Recon:*": EC2_PLAYBOOK, "*": TRIAGE_PLAYBOOK}, TRIAGE_PLAYBOOK),
        ({"Recon:*": EC2_PLAYBOOK, "Recon:EC2/*": TRIAGE_PLAYBOOK}, EC2_PLAYBOOK),
        ({"*Portscan": TRIAGE_PLAYBOOK, "*": EC2_PLAYBOOK}, TRIAGE_PLAYBOOK),
        ({"Backdoor:*": TRIAGE_PLAYBOOK, "*": EC2_PLAYBOOK}, EC2_PLAYBOOK),
    ],
    ids=["specific-first", "broad-first", "suffix-glob", "non-matching-first"],
)
def test_the_first_matching_override_wins(overrides, playbook):
    destination = route(_finding("Recon:EC2/Portscan"), overrides)
    assert destination.playbook == playbook
    first = next(pattern for pattern in overrides if fnmatchcase("Recon:EC2/Portscan", pattern))
    assert repr(first) in destination.reason


def test_an_override_to_a_playbook_not_in_this_version_goes_to_triage_saying_both(monkeypatch):
    # Every playbook ships in this version: a version without one (RDS, say) is simulated.
    if set(ALL_PLAYBOOKS) <= router.AVAILABLE_PLAYBOOKS:
        monkeypatch.setattr(router, "AVAILABLE_PLAYBOOKS", router.AVAILABLE_PLAYBOOKS - {RDS_PLAYBOOK})
    missing = [p for p in ALL_PLAYBOOKS if p not in router.AVAILABLE_PLAYBOOKS]
    destination = route(_finding("Recon:EC2/Portscan"), {"Recon:*": missing[0]})
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "Recon:*" in destination.reason and f"the {missing[0]} playbook is not in this version" in destination.reason


def test_an_override_to_the_bucket_playbook_needs_a_bucket():
    destination = route(_finding("Recon:EC2/Portscan"), {"Recon:*": S3_PLAYBOOK})
    assert destination.playbook == TRIAGE_PLAYBOOK and "no bucket" in destination.reason


def test_an_override_to_the_ec2_playbook_cannot_contain_what_is_not_an_instance():
    destination = route(_user_finding(), {"*": EC2_PLAYBOOK})
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "no instance id" in destination.reason
    assert USER_NAME not in destination.incident_key and ACCESS_KEY not in destination.incident_key


def test_an_override_naming_an_unknown_playbook_is_rejected_as_invalid_override():
    with pytest.raises(FindingRejected) as caught:
        route(_finding("Recon:EC2/Portscan"), {"Recon:EC2/*": "quarantine-everything"})
    assert caught.value.code == "invalid_override"
    assert "Recon:EC2/*" in caught.value.reason and "quarantine-everything" in caught.value.reason


@pytest.fixture
def clean_environment(monkeypatch):
    """IrflowSettings from nothing but what the test sets."""
    for name in [n for n in os.environ if n.startswith("IRFLOW_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_overrides_are_read_from_the_environment_in_their_order(clean_environment):
    assert IrflowSettings().playbook_overrides == {}
    overrides = {"Recon:EC2/*": TRIAGE_PLAYBOOK, "Recon:*": EC2_PLAYBOOK, "*:IAMUser/*": TRIAGE_PLAYBOOK}
    clean_environment.setenv("IRFLOW_PLAYBOOK_OVERRIDES", json.dumps(overrides))
    settings = IrflowSettings()
    assert list(settings.playbook_overrides.items()) == list(overrides.items())
    assert route(_finding("Recon:EC2/Portscan"), settings.playbook_overrides).playbook == TRIAGE_PLAYBOOK
    assert route(_finding("Backdoor:EC2/Spambot"), settings.playbook_overrides).playbook == EC2_PLAYBOOK
    assert "*:IAMUser/*" in route(_user_finding(), settings.playbook_overrides).reason


def test_an_unknown_playbook_in_the_environment_is_refused_when_routing(clean_environment):
    clean_environment.setenv("IRFLOW_PLAYBOOK_OVERRIDES", json.dumps({"*": "shutdown-everything"}))
    with pytest.raises(FindingRejected) as caught:
        route(_finding("Recon:EC2/Portscan"), IrflowSettings().playbook_overrides)
    assert caught.value.code == "invalid_override"
