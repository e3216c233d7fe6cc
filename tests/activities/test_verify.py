"""The pre-flight check on findings a person hands in (`resource_problem`): does the instance they name exist?"""

from __future__ import annotations

import boto3

from activities.verify import resource_problem
from irflow.devstack.demo import DemoWorkload, sample_access_key_finding, sample_finding
from irflow.models.finding import Finding, parse_guardduty

MISSING_INSTANCE = "i-0aaaaaaaaaaaaaaaa"


def finding_about(instance_id: str, workload: DemoWorkload) -> Finding:
    return parse_guardduty(sample_finding(instance_id, workload.account_id, workload.region)).finding


def test_a_running_instance_has_no_problem(workload) -> None:
    assert resource_problem(finding_about(workload.instance_id, workload)) is None


def test_a_stopped_instance_can_still_be_answered(workload) -> None:
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.stop_instances(InstanceIds=[workload.other_instance_id])
    assert resource_problem(finding_about(workload.other_instance_id, workload)) is None


def test_a_missing_instance_is_one_line_naming_it_and_where_it_was_looked_for(workload) -> None:
    problem = resource_problem(finding_about(MISSING_INSTANCE, workload))
    assert problem == f"instance {MISSING_INSTANCE} does not exist in {workload.account_id}/{workload.region}"


def test_an_instance_in_another_region_is_not_found_in_the_findings_region(workload) -> None:
    finding = parse_guardduty(sample_finding(workload.instance_id, workload.account_id, "eu-west-1")).finding
    assert resource_problem(finding) == (
        f"instance {workload.instance_id} does not exist in {workload.account_id}/eu-west-1"
    )


def test_a_terminated_instance_is_said_to_be_terminated(workload) -> None:
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.terminate_instances(InstanceIds=[workload.other_instance_id])
    problem = resource_problem(finding_about(workload.other_instance_id, workload))
    assert problem == f"instance {workload.other_instance_id} is terminated; there is nothing to contain"


def test_a_finding_about_something_other_than_an_instance_is_not_checked(workload) -> None:
    event = sample_access_key_finding(
        "nobody-by-this-name", "AKIANOSUCHKEY0000000", workload.account_id, workload.region
    )
    finding = parse_guardduty(event).finding
    assert finding.resource.resource_type == "AccessKey"
    assert resource_problem(finding) is None
