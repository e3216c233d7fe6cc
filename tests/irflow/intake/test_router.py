"""Routing: which playbook answers a finding and which incident (workflow id) it belongs to."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

import irflow.intake.router as router
from irflow.devstack.demo import sample_finding
from irflow.intake.router import EC2_PLAYBOOK, IAM_USER_PLAYBOOK, S3_PLAYBOOK, TRIAGE_PLAYBOOK, incident_id, route
from irflow.models.finding import Finding, parse_guardduty
from tests.support import CORPORA

ACCOUNT, REGION = "111122223333", "eu-west-1"
INSTANCE_ID = "i-0a1b2c3d4e5f60718"
OTHER_INSTANCE_ID = "i-0a1b2c3d4e5f60719"
WORKFLOW_ID_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")
INCIDENT_ID_STAMP = re.compile(r"-(\d{8}T\d{6}Z)$")


def _finding(instance_id: str = INSTANCE_ID, account: str = ACCOUNT, region: str = REGION, **kwargs) -> Finding:
    return parse_guardduty(sample_finding(instance_id, account, region, **kwargs)).finding


def _corpus_finding(resource_type: str) -> Finding:
    with (CORPORA / "guardduty" / "findings.jsonl").open() as lines:
        line = next(json.loads(raw) for raw in lines if json.loads(raw)["resource_type"] == resource_type)
    return parse_guardduty(line["event_eventbridge"]).finding


def test_ec2_instance_finding_goes_to_the_ec2_playbook():
    destination = route(_finding())
    assert destination.playbook == EC2_PLAYBOOK == "ec2-instance"
    assert destination.resource_id == INSTANCE_ID


def test_incident_key_names_account_region_and_instance():
    key = route(_finding()).incident_key
    for part in (ACCOUNT, REGION, INSTANCE_ID):
        assert part in key
    assert WORKFLOW_ID_CHARACTERS.fullmatch(key), key


def test_incident_key_is_deterministic():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first = route(_finding(now=now)).incident_key
    assert route(_finding(now=now)).incident_key == first
    assert route(_finding(now=now + timedelta(hours=5))).incident_key == first


def test_another_finding_about_the_same_instance_joins_the_same_incident():
    dns = _finding(finding_type="Backdoor:EC2/C&CActivity.B!DNS", finding_id="aaaa")
    mining = _finding(finding_type="CryptoCurrency:EC2/BitcoinTool.B", finding_id="bbbb", severity=5.0)
    assert dns.id != mining.id
    assert route(dns).incident_key == route(mining).incident_key


@pytest.mark.parametrize(
    "other",
    [
        {"instance_id": OTHER_INSTANCE_ID},
        {"account": "444455556666"},
        {"region": "us-west-2"},
    ],
    ids=["other-instance", "other-account", "other-region"],
)
def test_a_different_resource_is_a_different_incident(other):
    assert route(_finding()).incident_key != route(_finding(**other)).incident_key


def test_incident_key_never_carries_unsafe_characters():
    event = sample_finding(INSTANCE_ID, ACCOUNT, REGION)
    event["detail"]["accountId"] = "1111 2222/3333:?"
    event["detail"]["region"] = "eu west#1"
    # The ARN must agree with the region, or the parser rejects the finding before routing sees it.
    event["detail"]["arn"] = event["detail"]["arn"].replace(f":{REGION}:", ":eu west#1:")
    key = route(parse_guardduty(event).finding).incident_key
    assert WORKFLOW_ID_CHARACTERS.fullmatch(key), key
    assert INSTANCE_ID in key


def test_short_legacy_instance_ids_are_routed():
    destination = route(_finding("i-12345678"))
    assert destination.resource_id == "i-12345678"


def test_instance_finding_without_instance_id_goes_to_triage_as_an_incident_of_its_own():
    event = sample_finding(INSTANCE_ID, ACCOUNT, REGION)
    del event["detail"]["resource"]["instanceDetails"]["instanceId"]
    finding = parse_guardduty(event).finding
    assert finding.resource.resource_type == "Instance"
    destination = route(finding)
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "names no instance" in destination.reason
    assert finding.id in destination.incident_key
    assert WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key)
    other = dict(event, detail=dict(event["detail"], id="anotherfinding01"))
    assert route(parse_guardduty(other).finding).incident_key != destination.incident_key


@pytest.mark.parametrize("bad_id", ["i-XYZ", "vol-0a1b2c3d4e5f60718", "i-0bc12345678910", "GeneratedFindingInstanceId"])
def test_instance_id_that_is_not_an_instance_id_goes_to_triage_naming_it(bad_id):
    destination = route(_finding(bad_id))
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert bad_id in destination.reason
    assert "not an instance id" in destination.reason
    assert WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key), destination.incident_key
    assert destination.incident_key.startswith(f"triage-instance-{ACCOUNT}-{REGION}-")
    assert route(_finding(bad_id)).incident_key == destination.incident_key


@pytest.mark.parametrize(
    ("resource_type", "intended"),
    [("AccessKey", IAM_USER_PLAYBOOK), ("S3Bucket", S3_PLAYBOOK), ("EKSCluster", TRIAGE_PLAYBOOK)],
)
def test_findings_about_other_resources_go_to_the_playbook_meant_for_them_or_to_triage(resource_type, intended):
    finding = _corpus_finding(resource_type)
    assert finding.resource.resource_type == resource_type
    destination = route(finding)
    assert destination.playbook in router.AVAILABLE_PLAYBOOKS
    assert WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key)
    if intended in router.AVAILABLE_PLAYBOOKS:
        assert destination.playbook == intended
    else:
        assert destination.playbook == TRIAGE_PLAYBOOK
        assert destination.incident_key.startswith(f"triage-{resource_type.lower()}-")
        if intended == TRIAGE_PLAYBOOK:
            assert f"no containment playbook for {resource_type}" in destination.reason, destination.reason
        else:
            assert f"the {intended} playbook is not in this version" in destination.reason, destination.reason


def test_corpus_instance_findings_route_to_ec2_unless_their_id_is_malformed():
    with (CORPORA / "guardduty" / "findings.jsonl").open() as lines:
        instance_lines = [line for raw in lines if (line := json.loads(raw))["resource_type"] == "Instance"]
    routed = triaged = 0
    for line in instance_lines:
        finding = parse_guardduty(line["event_eventbridge"]).finding
        destination = route(finding)
        assert WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key)
        if re.fullmatch(r"i-([0-9a-f]{8}|[0-9a-f]{17})", finding.resource.instance_id or ""):
            assert destination.playbook == EC2_PLAYBOOK, destination
            assert destination.resource_id == finding.resource.instance_id
            assert finding.resource.instance_id in destination.incident_key
            routed += 1
        else:
            assert destination.playbook == TRIAGE_PLAYBOOK, destination
            assert repr(finding.resource.instance_id) in destination.reason
            triaged += 1
    assert routed + triaged == len(instance_lines) == 54
    assert triaged <= 2


def test_incident_id_adds_the_opening_time_to_the_key():
    key = route(_finding()).incident_key
    opened = datetime(2026, 3, 1, 9, 5, 7, 123456, tzinfo=UTC)
    result = incident_id(key, opened)
    assert result.startswith(key + "-")
    assert INCIDENT_ID_STAMP.search(result).group(1) == "20260301T090507Z"
    assert WORKFLOW_ID_CHARACTERS.fullmatch(result)


def test_incident_ids_differ_for_incidents_opened_at_different_times():
    key = route(_finding()).incident_key
    opened = datetime(2026, 3, 1, 9, 5, 7, tzinfo=UTC)
    assert incident_id(key, opened) != incident_id(key, opened + timedelta(seconds=1))
    assert incident_id(key, opened) == incident_id(key, opened)


def test_incident_id_stamp_is_utc_whatever_the_zone_of_the_time_given():
    """The stamp ends in Z, so it must be UTC: 11:05 at +02:00 is 09:05Z."""
    key = route(_finding()).incident_key
    in_paris = datetime(2026, 3, 1, 11, 5, 7, tzinfo=timezone(timedelta(hours=2)))
    assert INCIDENT_ID_STAMP.search(incident_id(key, in_paris)).group(1) == "20260301T090507Z"
