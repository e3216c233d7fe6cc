"""Every containment step of every playbook has a read-only postcondition check on the step's own argument; the
incident tags' check, against moto, on an instance, a bucket and an Aurora cluster."""

from __future__ import annotations

import inspect
from typing import get_type_hints

import boto3
import pytest

from activities.aws import registered_activities
from activities.postconditions import POSTCONDITIONS, check_tag_resource
from irflow.devstack import moto_fidelity_rds
from irflow.devstack.demo_rds import seed_aurora_cluster
from irflow.models.postconditions import Postcondition
from irflow.models.tagging import CONTAINED, INCIDENT_TAG, STATUS_TAG, TaggableKind, TaggedResource, TagRequest
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import act
from workflows.incident import PLAYBOOKS
from workflows.playbook import TAG_STEP

CONTAINMENT_STEPS = {
    step.name: step for playbook in PLAYBOOKS.values() for step in playbook.containment_steps if step.undo is not None
}
READ_ONLY = ("Describe", "Get", "List")


def test_the_playbooks_have_steps_to_check():
    """The coverage below would pass on nothing if no playbook declared a step."""
    assert len(CONTAINMENT_STEPS) >= 15
    assert {"tag_resource", "isolate_network", "deactivate_access_key", "block_bucket_public_access"} <= set(
        CONTAINMENT_STEPS
    )


@pytest.mark.parametrize("name", sorted(CONTAINMENT_STEPS))
def test_every_containment_step_with_an_undo_has_a_check_on_the_steps_own_argument(name):
    assert name in POSTCONDITIONS, f"containment step {name} has no postcondition check"
    step, check = CONTAINMENT_STEPS[name].activity, POSTCONDITIONS[name]
    [step_parameter] = inspect.signature(step).parameters
    [check_parameter] = inspect.signature(check).parameters
    assert get_type_hints(check)[check_parameter] is get_type_hints(step)[step_parameter]
    assert get_type_hints(check)["return"] is Postcondition


def test_every_check_is_a_registered_activity_that_only_reads():
    registered = registered_activities()
    for step, check in POSTCONDITIONS.items():
        assert registered[check.__name__][0] is check, step
        actions = check.iam_actions
        assert actions, f"{check.__name__} declares no IAM action"
        writes = [a for a in actions if not a.split(":", 1)[1].startswith(READ_ONLY)]
        assert writes == [], f"{check.__name__} (the check of {step}) may change things: {writes}"


def test_no_check_is_keyed_by_a_step_no_playbook_takes():
    assert set(POSTCONDITIONS) == set(CONTAINMENT_STEPS)


# --- the incident tags ---


def tag_argument(target):
    return TAG_STEP.argument(step_input(target))


def test_the_tags_check_fails_before_tagging_and_holds_after(workload, target):
    request = tag_argument(target)
    before = check_tag_resource(request)
    assert before.holds is False and before.resources == [workload.instance_id]
    assert f"no {INCIDENT_TAG}" in before.found and f"no {STATUS_TAG}" in before.found
    act(TAG_STEP, step_input(target))
    assert check_tag_resource(request) == Postcondition(step="tag_resource", holds=True)


def test_tags_removed_or_changed_from_outside_are_drift_until_tagged_again(workload, target):
    request = tag_argument(target)
    act(TAG_STEP, step_input(target))
    ec2 = boto3.client("ec2", region_name=workload.region)
    ec2.create_tags(Resources=[workload.instance_id], Tags=[{"Key": STATUS_TAG, "Value": "released"}])
    ec2.delete_tags(Resources=[workload.instance_id], Tags=[{"Key": INCIDENT_TAG}])
    result = check_tag_resource(request)
    assert result.holds is False
    assert result.found == (
        f"ec2-instance {workload.instance_id} has no {INCIDENT_TAG}, {STATUS_TAG}=released (containment tagged it "
        f"{INCIDENT_TAG}={request.incident_id}, {STATUS_TAG}={CONTAINED})"
    )
    assert result.resources == [workload.instance_id]
    act(TAG_STEP, step_input(target))
    assert check_tag_resource(request).holds is True


def test_a_bucket_whose_tag_set_was_replaced_is_drift(workload):
    request = TagRequest(
        incident_id="inc-tags-0001",
        account_id=workload.account_id,
        region=workload.region,
        resources=[TaggedResource(kind=TaggableKind.S3_BUCKET, name=workload.public_bucket)],
    )
    TAG_STEP.activity(request)
    assert check_tag_resource(request).holds is True
    boto3.client("s3").put_bucket_tagging(
        Bucket=workload.public_bucket, Tagging={"TagSet": [{"Key": "app", "Value": "shop"}]}
    )
    result = check_tag_resource(request)
    assert result.holds is False and result.resources == [workload.public_bucket]
    TAG_STEP.activity(request)
    assert check_tag_resource(request).holds is True


def test_an_aurora_member_deleted_is_gone_while_the_cluster_untagged_is_drift_by_label_and_arn(workload):
    moto_fidelity_rds.apply()
    aurora = seed_aurora_cluster(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)
    rds = boto3.client("rds", region_name=workload.region)
    cluster = rds.describe_db_clusters(DBClusterIdentifier=aurora.cluster_id)["DBClusters"][0]
    members = [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"]]
    arns = {m: rds.describe_db_instances(DBInstanceIdentifier=m)["DBInstances"][0]["DBInstanceArn"] for m in members}
    resources = [TaggedResource(kind=TaggableKind.RDS, name=arns[m], label=m) for m in members]
    resources.append(TaggedResource(kind=TaggableKind.RDS, name=cluster["DBClusterArn"], label=aurora.cluster_id))
    request = TagRequest(
        incident_id="inc-tags-0002", account_id=workload.account_id, region=workload.region, resources=resources
    )
    TAG_STEP.activity(request)
    assert check_tag_resource(request).holds is True

    rds.delete_db_instance(DBInstanceIdentifier=members[-1], SkipFinalSnapshot=True)
    rds.remove_tags_from_resource(ResourceName=cluster["DBClusterArn"], TagKeys=[STATUS_TAG])
    result = check_tag_resource(request)
    assert result.holds is False and result.gone == [members[-1]]
    assert result.resources == [aurora.cluster_id, cluster["DBClusterArn"]]
    TAG_STEP.activity(request)
    result = check_tag_resource(request)
    assert (result.holds, result.gone) == (True, [members[-1]])
