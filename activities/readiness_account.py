"""Readiness in every account and region: GuardDuty on and publishing often, a multi-region trail logging, and
the forensic egress an isolated instance's memory capture goes through."""

from __future__ import annotations

from shlex import quote

from botocore.exceptions import ClientError

from activities import forensic_egress
from activities.aws import client, own_account_id, transient
from activities.readiness_common import Verdict, described_error, failed, passed, readiness_check, unknown
from irflow.models.readiness import ReadinessScope
from irflow.models.settings import get_settings

RECOMMENDED_FREQUENCY = "FIFTEEN_MINUTES"
_FREQUENCY_WORDS = {"FIFTEEN_MINUTES": "15 minutes", "ONE_HOUR": "1 hour", "SIX_HOURS": "6 hours"}


def _where(scope: ReadinessScope) -> str:
    """`--region R` for a fix line, and the account it must be run in when it is not the worker's own."""
    account = f" (in account {scope.account_id})" if scope.account_id else ""
    return f"--region {quote(scope.region)}{account}"


def _detector(scope: ReadinessScope) -> tuple[str, dict] | None:
    """The region's GuardDuty detector (there is at most one per account and region) and its settings."""
    guardduty = client("guardduty", scope.region, scope.account_id or None)
    detectors = guardduty.list_detectors().get("DetectorIds", [])
    if not detectors:
        return None
    return detectors[0], guardduty.get_detector(DetectorId=detectors[0])


def _no_detector(scope: ReadinessScope, required: bool | None = None) -> Verdict:
    return failed(
        f"no GuardDuty detector in {scope.region}: no finding about this region reaches irflow",
        f"aws guardduty create-detector --enable --finding-publishing-frequency {RECOMMENDED_FREQUENCY} "
        f"{_where(scope)}",
        required,
    )


@readiness_check("guardduty.enabled", "GuardDuty is enabled", "guardduty:ListDetectors", "guardduty:GetDetector")
def guardduty_enabled(scope: ReadinessScope) -> Verdict:
    """A GuardDuty detector in the region, its status ENABLED."""
    found = _detector(scope)
    if found is None:
        return _no_detector(scope)
    detector_id, detector = found
    if detector.get("Status") != "ENABLED":
        return failed(
            f"detector {detector_id} is {detector.get('Status', 'without a status')}: GuardDuty raises no finding",
            f"aws guardduty update-detector --detector-id {quote(detector_id)} --enable {_where(scope)}",
        )
    return passed(f"detector {detector_id} is ENABLED")


@readiness_check(
    "guardduty.publishing_frequency",
    f"GuardDuty publishes updated findings every {_FREQUENCY_WORDS[RECOMMENDED_FREQUENCY]}",
    "guardduty:ListDetectors",
    "guardduty:GetDetector",
    required=False,
)
def guardduty_publishing_frequency(scope: ReadinessScope) -> Verdict:
    """How often GuardDuty sends updates of a finding it already raised (a new finding is sent at once): every
    6 hours by default, so a repeat of the activity reaches a running incident hours late."""
    found = _detector(scope)
    if found is None:
        return _no_detector(scope, required=False)
    detector_id, detector = found
    frequency = detector.get("FindingPublishingFrequency", "")
    words = _FREQUENCY_WORDS.get(frequency, frequency or "not reported")
    if frequency != RECOMMENDED_FREQUENCY:
        return failed(
            f"detector {detector_id} publishes updated findings every {words}",
            f"aws guardduty update-detector --detector-id {quote(detector_id)} --finding-publishing-frequency "
            f"{RECOMMENDED_FREQUENCY} {_where(scope)}",
        )
    return passed(f"detector {detector_id} publishes updated findings every {words}")


@readiness_check(
    "cloudtrail.trail",
    "A multi-region CloudTrail trail is logging",
    "cloudtrail:DescribeTrails",
    "cloudtrail:GetTrailStatus",
)
def cloudtrail_trail(scope: ReadinessScope) -> Verdict:
    """A multi-region trail (the account's own or its organization's) that is logging: without one, the API calls
    irflow's detection rules read never reach EventBridge, and an incident has no record of who did what."""
    cloudtrail = client("cloudtrail", scope.region, scope.account_id or None)
    trails = [
        t for t in cloudtrail.describe_trails(includeShadowTrails=True)["trailList"] if t.get("IsMultiRegionTrail")
    ]
    if not trails:
        return failed(
            f"no multi-region trail is visible from {scope.region}",
            "aws cloudtrail create-trail --name irflow-trail --s3-bucket-name <a bucket the trail may write to> "
            f"--is-multi-region-trail {_where(scope)}; then aws cloudtrail start-logging --name irflow-trail "
            f"{_where(scope)}",
        )
    looking_from = scope.account_id or own_account_id()
    stopped, elsewhere, unreadable = [], [], []
    for trail in trails:
        arn, home = trail["TrailARN"], trail.get("HomeRegion") or scope.region
        owner = arn.split(":")[4] if arn.count(":") >= 5 else looking_from
        if trail.get("IsOrganizationTrail") and owner != looking_from:
            elsewhere.append(f"organization trail {arn} of account {owner}")  # its status is read there
            continue
        try:
            status = client("cloudtrail", home, scope.account_id or None).get_trail_status(Name=arn)
        except ClientError as error:
            if transient(error):
                raise
            unreadable.append(f"{arn}: {described_error(error)}")
            continue
        if status.get("IsLogging"):
            return passed(f"trail {arn} (multi-region) is logging")
        stopped.append(trail)
    if elsewhere:
        return passed(
            f"{'; '.join(elsewhere)} (multi-region): its logging is read in that account, not from {looking_from}"
            + (f"; not logging here: {', '.join(t['TrailARN'] for t in stopped)}" if stopped else "")
        )
    if unreadable and not stopped:
        return unknown(f"the status of no multi-region trail could be read: {'; '.join(unreadable)}")
    names = ", ".join(t["TrailARN"] for t in stopped)
    first = stopped[0]
    return failed(
        f"multi-region trail(s) not logging: {names}"
        + (f"; status unreadable: {'; '.join(unreadable)}" if unreadable else ""),
        f"aws cloudtrail start-logging --name {quote(first['TrailARN'])} --region "
        f"{quote(first.get('HomeRegion') or scope.region)}"
        + (f" (in account {scope.account_id})" if scope.account_id else ""),
        problems=[f"{t['TrailARN']}: not logging" for t in stopped],
    )


def _vpcs_with_instances(ec2) -> dict[str, list[str]]:
    """Each VPC of the region that has instances (not terminated), with a few of them."""
    found: dict[str, list[str]] = {}
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                if instance.get("VpcId"):
                    found.setdefault(instance["VpcId"], []).append(instance["InstanceId"])
    return found


@readiness_check(
    "forensic_egress.vpcs",
    "Each VPC with instances can reach the forensic endpoints",
    "ec2:DescribeInstances",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeManagedPrefixLists",
)
def forensic_egress_vpcs(scope: ReadinessScope) -> Verdict:
    """With IRFLOW_FORENSIC_EGRESS, in each VPC that has instances, one configured security group of that VPC or a
    configured prefix list of the region: what the quarantine group would allow HTTPS to (the same test
    containment makes). Without the setting, there is nothing to reach: the check passes and is not required."""
    settings = get_settings()
    configured = settings.forensic_egress
    if not configured:
        return passed(
            f"IRFLOW_FORENSIC_EGRESS is not set: memory capture is {settings.memory_capture_mode().value}",
            required=False,
        )
    ec2 = client("ec2", scope.region, scope.account_id or None)
    vpcs = _vpcs_with_instances(ec2)
    if not vpcs:
        return passed(f"no instance in {scope.region}: no VPC needs forensic egress")
    usable = forensic_egress.resolve(ec2, sorted(vpcs), configured)
    blind = {vpc: egress for vpc, egress in usable.items() if not egress.applied}
    reached = "; ".join(f"{vpc}: {', '.join(e.applied)}" for vpc, e in sorted(usable.items()) if e.applied)
    if blind:
        detail = ", ".join(f"{vpc} ({len(vpcs[vpc])} instance(s), e.g. {vpcs[vpc][0]})" for vpc in sorted(blind))
        return failed(
            f"none of {', '.join(configured)} exists in {detail}: an isolated instance there cannot be imaged"
            + (f"; usable elsewhere: {reached}" if reached else ""),
            f"in {', '.join(sorted(blind))} (region {scope.region}"
            + (f", account {scope.account_id}" if scope.account_id else "")
            + "): create the VPC interface endpoints for ssm, "
            "ssmmessages and ec2messages in one security group open to the VPC on 443, and an S3 gateway endpoint; "
            "then add that group's id (sg-…) or the S3 prefix list (pl-…) to IRFLOW_FORENSIC_EGRESS",
            problems=[f"{vpc}: no forensic egress" for vpc in blind],
        )
    return passed(f"every VPC with instances reaches forensic egress: {reached}")
