"""Who changed a contained resource: CloudTrail's LookupEvents as documented (botocore's Stubber checks requests
and responses against the service model), irflow's own calls and reads left out, newest first; and the
best-effort answer when CloudTrail cannot tell (moto does not implement LookupEvents)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError

from activities import changes
from activities.aws import ACCESS_DENIED, client
from activities.changes import MAX_PAGES, PAGE_SIZE, changes_to
from irflow.models.postconditions import Change, ChangeLookup, ChangeQuery

ACCOUNT, REGION = "123456789012", "us-east-1"
SINCE = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
ATTACKER = f"arn:aws:iam::{ACCOUNT}:user/mallory"
APP_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/app-deployer/pipeline-7"
IRFLOW_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/irflow-responder/irflow-responder"
OWN = ["arn:aws:sts::*:assumed-role/irflow-responder/*", "arn:aws:iam::*:role/irflow-responder"]


def event(event_id: str, name: str, minutes: int, caller: str, read_only: bool = False, resource: str = "eni-1"):
    """One LookupEvents event as CloudTrail returns it: the record itself is a JSON string inside."""
    when = SINCE + timedelta(minutes=minutes)
    identity = {"type": "IAMUser", "arn": caller, "userName": caller.rsplit("/", 1)[-1]}
    if ":assumed-role/" in caller:
        role = caller.split("/")[1]
        identity = {
            "type": "AssumedRole",
            "arn": caller,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}},
        }
    record = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventName": name,
        "readOnly": read_only,
        "eventID": event_id,
    }
    return {
        "EventId": event_id,
        "EventName": name,
        "ReadOnly": "true" if read_only else "false",
        "EventTime": when,
        "EventSource": "ec2.amazonaws.com",
        "Username": identity.get("userName", caller.rsplit("/", 1)[-1]),
        "Resources": [{"ResourceType": "AWS::EC2::NetworkInterface", "ResourceName": resource}],
        "CloudTrailEvent": json.dumps(record),
    }


def lookup(resource: str, token: str | None = None) -> dict:
    params = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": resource}],
        "StartTime": SINCE,
        "MaxResults": PAGE_SIZE,
    }
    return {**params, "NextToken": token} if token else params


def query(*resources: str) -> ChangeQuery:
    return ChangeQuery(account_id=ACCOUNT, region=REGION, resources=list(resources), since=SINCE, own_principals=OWN)


@pytest.fixture
def trail(aws):
    """The very client the activity uses (activities.aws caches it), stubbed."""
    with Stubber(client("cloudtrail", REGION, ACCOUNT)) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_changes_by_others_newest_first_without_reads_or_irflows_own_calls(trail):
    trail.add_response(
        "lookup_events",
        {
            "Events": [
                event("e4", "DescribeNetworkInterfaces", 40, ATTACKER, read_only=True),
                event("e3", "ModifyNetworkInterfaceAttribute", 30, IRFLOW_SESSION),
                event("e2", "ModifyNetworkInterfaceAttribute", 20, ATTACKER),
            ],
            "NextToken": "page-2",
        },
        lookup("eni-1"),
    )
    trail.add_response(
        "lookup_events", {"Events": [event("e1", "CreateNetworkInterface", 1, APP_SESSION)]}, lookup("eni-1", "page-2")
    )
    trail.add_response(
        "lookup_events",
        {
            "Events": [
                event("e5", "AuthorizeSecurityGroupIngress", 50, APP_SESSION, resource="sg-q"),
                event("e2", "ModifyNetworkInterfaceAttribute", 20, ATTACKER, resource="sg-q"),  # names both
            ]
        },
        lookup("sg-q"),
    )
    found = changes_to(query("eni-1", "sg-q", "eni-1"))
    assert found == ChangeLookup(
        changes=[
            Change(
                event_name="AuthorizeSecurityGroupIngress",
                event_time=SINCE + timedelta(minutes=50),
                principal=APP_SESSION,
                event_id="e5",
                resource="sg-q",
            ),
            Change(
                event_name="ModifyNetworkInterfaceAttribute",
                event_time=SINCE + timedelta(minutes=20),
                principal=ATTACKER,
                event_id="e2",
                resource="eni-1",
            ),
            Change(
                event_name="CreateNetworkInterface",
                event_time=SINCE + timedelta(minutes=1),
                principal=APP_SESSION,
                event_id="e1",
                resource="eni-1",
            ),
        ]
    )


def test_without_own_principals_irflows_calls_are_changes_too(trail):
    trail.add_response(
        "lookup_events",
        {"Events": [event("e3", "ModifyNetworkInterfaceAttribute", 30, IRFLOW_SESSION)]},
        lookup("eni-1"),
    )
    found = changes_to(query("eni-1").model_copy(update={"own_principals": []}))
    assert [(c.event_id, c.principal) for c in found.changes] == [("e3", IRFLOW_SESSION)]


def test_an_until_bounds_the_lookup(trail):
    until = SINCE + timedelta(hours=1)
    trail.add_response("lookup_events", {"Events": []}, {**lookup("eni-1"), "EndTime": until})
    assert changes_to(query("eni-1").model_copy(update={"until": until})) == ChangeLookup()


def test_a_resource_with_more_events_than_read_says_so(trail):
    for page in range(MAX_PAGES):
        trail.add_response(
            "lookup_events",
            {"Events": [event(f"e{page}", "ModifyNetworkInterfaceAttribute", page, ATTACKER)], "NextToken": f"t{page}"},
            lookup("eni-1", f"t{page - 1}" if page else None),
        )
    found = changes_to(query("eni-1"))
    assert len(found.changes) == MAX_PAGES
    assert found.reason == f"eni-1: only the newest {PAGE_SIZE * MAX_PAGES} events were read"


def test_lookup_refused_is_a_reason_with_what_was_found_so_far_never_an_error(trail):
    trail.add_response(
        "lookup_events", {"Events": [event("e2", "ModifyNetworkInterfaceAttribute", 20, ATTACKER)]}, lookup("eni-1")
    )
    trail.add_client_error(
        "lookup_events",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: cloudtrail:LookupEvents",
        expected_params=lookup("sg-q"),
    )
    found = changes_to(query("eni-1", "sg-q", "i-1"))
    assert [c.event_id for c in found.changes] == ["e2"]
    assert found.reason == (
        "CloudTrail LookupEvents failed for sg-q (i-1 not asked): AccessDeniedException: not authorized to perform: "
        "cloudtrail:LookupEvents"
    )


def test_moto_without_lookup_events_gives_a_reason_not_an_error(aws):
    found = changes_to(query("eni-1"))
    assert found.changes == []
    assert found.reason.startswith("CloudTrail LookupEvents failed for eni-1: NotImplementedError")
    assert "lookup_events" in found.reason


def test_an_account_irflow_cannot_enter_gives_a_reason_not_an_error(aws, monkeypatch):
    def refused(service, region, account_id=None, role_name=None):
        raise ApplicationError(f"cannot act in account {account_id}: AccessDenied", type=ACCESS_DENIED)

    monkeypatch.setattr(changes, "client", refused)  # as activities.aws raises when assuming the member role fails
    found = changes_to(ChangeQuery(account_id="210987654321", region=REGION, resources=["eni-1"], since=SINCE))
    assert found == ChangeLookup(
        reason="cannot ask CloudTrail in 210987654321/us-east-1: AccessDenied: cannot act in account 210987654321: "
        "AccessDenied"
    )
