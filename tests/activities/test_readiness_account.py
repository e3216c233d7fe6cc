"""Readiness in each account and region (moto): GuardDuty and how often it publishes, a multi-region trail
logging, and forensic egress in every VPC that has instances."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from activities.aws import client
from activities.readiness_account import (
    cloudtrail_trail,
    forensic_egress_vpcs,
    guardduty_enabled,
    guardduty_publishing_frequency,
)
from irflow.devstack.demo import IMAGE_ID
from irflow.models.readiness import CheckStatus, ReadinessScope
from tests.support import member_session, setting

REGION = "us-east-1"
SCOPE = ReadinessScope(account_id="", region=REGION)
MEMBER = "111122223333"
ACCOUNT = "123456789012"  # moto's
MANAGEMENT = "999988887777"


def test_without_a_detector_both_guardduty_checks_fail_saying_how_to_create_one(aws):
    enabled, frequency = guardduty_enabled(SCOPE), guardduty_publishing_frequency(SCOPE)
    assert (enabled.status, enabled.required) == (CheckStatus.FAIL, True)
    assert (frequency.status, frequency.required) == (CheckStatus.FAIL, False)
    for result in (enabled, frequency):
        assert "no GuardDuty detector in us-east-1" in result.evidence
        assert result.fix == (
            "aws guardduty create-detector --enable --finding-publishing-frequency FIFTEEN_MINUTES --region us-east-1"
        )


def test_a_detector_publishing_every_six_hours_is_enabled_but_not_recommended(aws):
    guardduty = boto3.client("guardduty", region_name=REGION)
    detector = guardduty.create_detector(Enable=True, FindingPublishingFrequency="SIX_HOURS")["DetectorId"]
    assert guardduty_enabled(SCOPE).status == CheckStatus.PASS
    frequency = guardduty_publishing_frequency(SCOPE)
    assert (frequency.status, frequency.required) == (CheckStatus.FAIL, False)
    assert "every 6 hours" in frequency.evidence
    assert frequency.fix == (
        f"aws guardduty update-detector --detector-id {detector} --finding-publishing-frequency FIFTEEN_MINUTES "
        "--region us-east-1"
    )


def test_a_member_accounts_detector_is_read_through_the_member_role(aws):
    """The scope's account is reached through the member role: the member's detector, not the worker's."""
    member = member_session(MEMBER, REGION).client("guardduty")
    detector = member.create_detector(Enable=False)["DetectorId"]
    result = guardduty_enabled(ReadinessScope(account_id=MEMBER, region=REGION))
    assert result.status == CheckStatus.FAIL and detector in result.evidence
    assert result.fix.endswith(f"--region us-east-1 (in account {MEMBER})")
    assert guardduty_enabled(SCOPE).fix.startswith("aws guardduty create-detector")  # the worker's own: none


def _trail(multi_region: bool, logging: bool) -> str:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="trail-logs-bucket")
    cloudtrail = boto3.client("cloudtrail", region_name=REGION)
    arn = cloudtrail.create_trail(Name="org-trail", S3BucketName="trail-logs-bucket", IsMultiRegionTrail=multi_region)
    if logging:
        cloudtrail.start_logging(Name="org-trail")
    return arn["TrailARN"]


def test_no_trail_or_only_a_single_region_trail_fails(aws):
    assert cloudtrail_trail(SCOPE).status == CheckStatus.FAIL
    _trail(multi_region=False, logging=True)
    result = cloudtrail_trail(SCOPE)
    assert result.status == CheckStatus.FAIL and "no multi-region trail" in result.evidence
    assert "--is-multi-region-trail" in result.fix


def test_a_multi_region_trail_is_seen_from_another_region_and_its_logging_counts(aws):
    arn = _trail(multi_region=True, logging=False)
    elsewhere = ReadinessScope(account_id="", region="eu-west-1")
    stopped = cloudtrail_trail(elsewhere)
    assert stopped.status == CheckStatus.FAIL and arn in stopped.evidence
    assert stopped.fix == f"aws cloudtrail start-logging --name {arn} --region us-east-1"
    boto3.client("cloudtrail", region_name=REGION).start_logging(Name="org-trail")
    assert cloudtrail_trail(elsewhere).status == CheckStatus.PASS


def _instance_in_another_vpc() -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
    ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=subnet)
    return vpc


def test_forensic_egress_in_every_vpc_with_instances(workload, monkeypatch):
    assert forensic_egress_vpcs(SCOPE).status == CheckStatus.PASS  # the demo's group and S3 prefix list
    other = _instance_in_another_vpc()
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_vpc(CidrBlock="10.60.0.0/16")  # no instance: needs nothing
    assert forensic_egress_vpcs(SCOPE).status == CheckStatus.PASS  # a prefix list reaches every VPC of the region

    setting(monkeypatch, forensic_egress=workload.endpoint_group_id)  # the endpoints' group only
    result = forensic_egress_vpcs(SCOPE)
    assert (result.status, result.required) == (CheckStatus.FAIL, True)
    assert other in result.evidence and workload.vpc_id not in result.evidence.split("usable elsewhere")[0]
    assert f"{workload.vpc_id}: {workload.endpoint_group_id}" in result.evidence
    assert other in result.fix and "IRFLOW_FORENSIC_EGRESS" in result.fix
    assert result.problems == [f"{other}: no forensic egress"]


@pytest.mark.parametrize("mode", ["skip", "before-isolation"])
def test_without_forensic_egress_there_is_nothing_to_reach(aws, monkeypatch, mode):
    setting(monkeypatch, memory_without_egress=mode)
    result = forensic_egress_vpcs(SCOPE)
    assert (result.status, result.required) == (CheckStatus.PASS, False)
    assert result.evidence == f"IRFLOW_FORENSIC_EGRESS is not set: memory capture is {mode}"


def _described(arn: str, home: str = REGION, organization: bool = False) -> dict:
    return {
        "Name": arn.rsplit("/", 1)[-1],
        "TrailARN": arn,
        "HomeRegion": home,
        "IsMultiRegionTrail": True,
        "IsOrganizationTrail": organization,
    }


def _status(stub: Stubber, arn: str, logging: bool) -> None:
    stub.add_response("get_trail_status", {"IsLogging": logging}, {"Name": arn})


def test_a_shadow_trail_is_asked_about_in_its_home_region(aws):
    """From us-east-1 a trail made in eu-west-1 is a shadow: its status is asked of its home region."""
    arn = f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT}:trail/irflow-trail"
    with Stubber(client("cloudtrail", REGION)) as here, Stubber(client("cloudtrail", "eu-west-1")) as home:
        here.add_response("describe_trails", {"trailList": [_described(arn, home="eu-west-1")]})
        _status(home, arn, logging=True)
        result = cloudtrail_trail(SCOPE)
    assert (result.status, result.evidence) == (CheckStatus.PASS, f"trail {arn} (multi-region) is logging")


def test_an_organization_trail_seen_from_a_member_passes_saying_whose_it_is(aws):
    """A member sees its organization's trail but cannot read its status: that is read in the management account.
    The member's own trails are still looked at, and one that cannot be read does not end the check."""
    organization = f"arn:aws:cloudtrail:{REGION}:{MANAGEMENT}:trail/org-trail"
    own, unreadable = (f"arn:aws:cloudtrail:{REGION}:{MEMBER}:trail/{name}" for name in ("local", "locked"))
    with Stubber(client("cloudtrail", REGION, MEMBER)) as member:
        trails = [_described(organization, organization=True), _described(unreadable), _described(own)]
        member.add_response("describe_trails", {"trailList": trails})
        member.add_client_error("get_trail_status", "TrailNotFoundException", "no such trail", 404)
        _status(member, own, logging=False)
        result = cloudtrail_trail(ReadinessScope(account_id=MEMBER, region=REGION))
        member.assert_no_pending_responses()
    assert result.status == CheckStatus.PASS
    assert f"organization trail {organization} of account {MANAGEMENT}" in result.evidence
    assert f"its logging is read in that account, not from {MEMBER}; not logging here: {own}" in result.evidence


def test_one_trail_that_cannot_be_read_does_not_hide_another_that_logs_or_one_that_does_not(aws):
    first, second = (f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{name}" for name in ("first", "second"))
    with Stubber(client("cloudtrail", REGION)) as stub:
        for logging in (True, False):
            stub.add_response("describe_trails", {"trailList": [_described(first), _described(second)]})
            stub.add_client_error("get_trail_status", "AccessDeniedException", "not this one", 400)
            _status(stub, second, logging=logging)
        logs, stopped = cloudtrail_trail(SCOPE), cloudtrail_trail(SCOPE)
    assert (logs.status, logs.evidence) == (CheckStatus.PASS, f"trail {second} (multi-region) is logging")
    assert stopped.status == CheckStatus.FAIL
    assert f"not logging: {second}; status unreadable: {first}: not allowed to look" in stopped.evidence
    assert stopped.problems == [f"{second}: not logging"]
    assert stopped.fix == f"aws cloudtrail start-logging --name {second} --region {REGION}"
