"""The incident tags on every kind of resource, against in-process moto: the two irflow keys are added beside
the resource's own tags, tagging twice is once, restoring gives those two keys back exactly (an earlier
incident's values included) and touches nothing else, and a resource deleted meanwhile is reported, not fatal."""

from __future__ import annotations

import json

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities.ec2_context import describe_instance_context
from activities.iam_role import describe_iam_role_context
from activities.iam_user import describe_iam_user_context
from activities.lambda_function import describe_lambda_context
from activities.rds import describe_db_instance_context
from activities.s3_bucket import describe_bucket_context
from activities.tagging import restore_resource_tags, tag_resource
from irflow.devstack import moto_fidelity_lambda, moto_fidelity_rds
from irflow.devstack.demo import IMAGE_ID
from irflow.devstack.demo_lambda import deployment_package, observed_function, seed_lambda_function
from irflow.devstack.demo_rds import PASSWORD, seed_aurora_cluster, seed_rds_instance
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.errors import NOT_FOUND
from irflow.models.iam import IamRoleStepInput, IamRoleTarget, IamUserStepInput, IamUserTarget
from irflow.models.lambda_function import LambdaStepInput, LambdaTarget
from irflow.models.rds import DbStepInput, DbTarget
from irflow.models.s3 import BucketStepInput, BucketTarget
from irflow.models.tagging import INCIDENT_TAG, STATUS_TAG, TaggableKind, TaggedResource, TagRequest, tag_request_for

INCIDENT_ID = "inc-tagging-0001"
REGION = "us-east-1"
OURS = {INCIDENT_TAG: INCIDENT_ID, STATUS_TAG: "contained"}
OWN = {"app": "shop", "owner": "team-payments"}
EARLIER_INCIDENT = {INCIDENT_TAG: "inc-earlier-0042"}
EARLIER_INCIDENT_AND_STATUS = {INCIDENT_TAG: "inc-earlier-0042", STATUS_TAG: "released"}

Tags = dict[str, str]


def _listed(tags: Tags) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _pairs(tags: list[dict[str, str]] | None) -> Tags:
    return {t["Key"]: t["Value"] for t in tags or []}


# --- each kind of resource: made, read back, tagged by a person, deleted, with boto3 as a responder would ---


class Kind:
    """One kind of taggable resource. `tags` is what a responder sees; for S3, None means "no tag set at all"
    (GetBucketTagging answers NoSuchTagSet), which restoring must give back as such, not as an empty set."""

    id: str
    kind: TaggableKind

    def make(self, label: str, tags: Tags) -> tuple[str, str]:
        """Create the resource; (what its tagging API calls it, how a person calls it, or "")."""
        raise NotImplementedError

    def tags(self, name: str) -> Tags | None:
        raise NotImplementedError

    def tag_by_hand(self, name: str, tags: Tags) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def create(self, label: str, tags: Tags | None = None) -> TaggedResource:
        """Create it, then record its tags as the playbook's describe step does (the prior state)."""
        name, shown = self.make(label, dict(tags or {}))
        return TaggedResource(kind=self.kind, name=name, label=shown, prior=self.tags(name) or {})


class Ec2Instances(Kind):
    id, kind = "ec2-instance", TaggableKind.EC2_INSTANCE

    def make(self, label, tags):
        ec2 = boto3.client("ec2", region_name=REGION)
        arguments = {"ImageId": IMAGE_ID, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1}
        if tags:
            arguments["TagSpecifications"] = [{"ResourceType": "instance", "Tags": _listed(tags)}]
        return ec2.run_instances(**arguments)["Instances"][0]["InstanceId"], ""

    def tags(self, name):
        ec2 = boto3.client("ec2", region_name=REGION)
        return _pairs(ec2.describe_instances(InstanceIds=[name])["Reservations"][0]["Instances"][0].get("Tags"))

    def tag_by_hand(self, name, tags):
        boto3.client("ec2", region_name=REGION).create_tags(Resources=[name], Tags=_listed(tags))

    def delete(self, name):
        boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[name])


class IamUsers(Kind):
    id, kind = "iam-user", TaggableKind.IAM_USER

    def make(self, label, tags):
        boto3.client("iam").create_user(UserName=label, Tags=_listed(tags))
        return label, ""

    def tags(self, name):
        return _pairs(boto3.client("iam").list_user_tags(UserName=name)["Tags"])

    def tag_by_hand(self, name, tags):
        boto3.client("iam").tag_user(UserName=name, Tags=_listed(tags))

    def delete(self, name):
        boto3.client("iam").delete_user(UserName=name)


class IamRoles(Kind):
    id, kind = "iam-role", TaggableKind.IAM_ROLE

    def make(self, label, tags):
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        boto3.client("iam").create_role(RoleName=label, AssumeRolePolicyDocument=json.dumps(trust), Tags=_listed(tags))
        return label, ""

    def tags(self, name):
        return _pairs(boto3.client("iam").list_role_tags(RoleName=name)["Tags"])

    def tag_by_hand(self, name, tags):
        boto3.client("iam").tag_role(RoleName=name, Tags=_listed(tags))

    def delete(self, name):
        boto3.client("iam").delete_role(RoleName=name)


class S3Buckets(Kind):
    id, kind = "s3-bucket", TaggableKind.S3_BUCKET

    def make(self, label, tags):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=label)
        if tags:
            s3.put_bucket_tagging(Bucket=label, Tagging={"TagSet": _listed(tags)})
        return label, ""

    def tags(self, name):
        s3 = boto3.client("s3", region_name=REGION)
        try:
            return _pairs(s3.get_bucket_tagging(Bucket=name)["TagSet"])
        except s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchTagSet":
                return None
            raise

    def tag_by_hand(self, name, tags):
        # PutBucketTagging replaces the set: a person keeps the others by writing them back too.
        merged = {**(self.tags(name) or {}), **tags}
        boto3.client("s3", region_name=REGION).put_bucket_tagging(Bucket=name, Tagging={"TagSet": _listed(merged)})

    def delete(self, name):
        boto3.client("s3", region_name=REGION).delete_bucket(Bucket=name)


class LambdaFunctions(Kind):
    id, kind = "lambda-function", TaggableKind.LAMBDA_FUNCTION

    def make(self, label, tags):
        moto_fidelity_lambda.apply()
        iam = boto3.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = iam.create_role(RoleName=f"{label}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        created = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=label,
            Runtime="python3.12",
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": deployment_package()},
            Tags=tags,
        )
        return created["FunctionArn"], label

    def tags(self, name):
        return dict(boto3.client("lambda", region_name=REGION).list_tags(Resource=name).get("Tags") or {})

    def tag_by_hand(self, name, tags):
        boto3.client("lambda", region_name=REGION).tag_resource(Resource=name, Tags=tags)

    def delete(self, name):
        boto3.client("lambda", region_name=REGION).delete_function(FunctionName=name)


class RdsInstances(Kind):
    id, kind = "rds-instance", TaggableKind.RDS

    def make(self, label, tags):
        moto_fidelity_rds.apply()
        record = boto3.client("rds", region_name=REGION).create_db_instance(
            DBInstanceIdentifier=label,
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="orders_admin",
            MasterUserPassword=PASSWORD,
            AllocatedStorage=20,
            Tags=_listed(tags),
        )["DBInstance"]
        return record["DBInstanceArn"], label

    def tags(self, name):
        rds = boto3.client("rds", region_name=REGION)
        identifier = name.rsplit(":", 1)[-1]
        return _pairs(rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0].get("TagList"))

    def tag_by_hand(self, name, tags):
        boto3.client("rds", region_name=REGION).add_tags_to_resource(ResourceName=name, Tags=_listed(tags))

    def delete(self, name):
        rds = boto3.client("rds", region_name=REGION)
        rds.delete_db_instance(DBInstanceIdentifier=name.rsplit(":", 1)[-1], SkipFinalSnapshot=True)


class AuroraClusters(Kind):
    id, kind = "aurora-cluster", TaggableKind.RDS

    def make(self, label, tags):
        moto_fidelity_rds.apply()
        record = boto3.client("rds", region_name=REGION).create_db_cluster(
            DBClusterIdentifier=label,
            Engine="aurora-postgresql",
            MasterUsername="ledger_admin",
            MasterUserPassword=PASSWORD,
            Tags=_listed(tags),
        )["DBCluster"]
        return record["DBClusterArn"], label

    def tags(self, name):
        rds = boto3.client("rds", region_name=REGION)
        identifier = name.rsplit(":", 1)[-1]
        return _pairs(rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0].get("TagList"))

    def tag_by_hand(self, name, tags):
        boto3.client("rds", region_name=REGION).add_tags_to_resource(ResourceName=name, Tags=_listed(tags))

    def delete(self, name):
        rds = boto3.client("rds", region_name=REGION)
        rds.delete_db_cluster(DBClusterIdentifier=name.rsplit(":", 1)[-1], SkipFinalSnapshot=True)


KINDS = [Ec2Instances(), IamUsers(), IamRoles(), S3Buckets(), LambdaFunctions(), RdsInstances(), AuroraClusters()]


@pytest.fixture(params=KINDS, ids=[k.id for k in KINDS])
def kind(request, aws) -> Kind:
    return request.param


def _request(*resources: TaggedResource) -> TagRequest:
    account = boto3.client("sts").get_caller_identity()["Account"]
    return TagRequest(incident_id=INCIDENT_ID, account_id=account, region=REGION, resources=list(resources))


# --- tagging and restoring, for each kind ---


def test_the_two_tags_are_added_beside_the_resources_own_and_tagging_twice_is_once(kind):
    resource = kind.create("orders-a", OWN)
    request = _request(resource)

    first = tag_resource(request)
    assert (first.changed, first.detail["tagged"], first.detail["gone"]) == (True, [resource.shown], [])
    assert kind.tags(resource.name) == {**OWN, **OURS}

    second = tag_resource(request)
    assert (second.changed, second.detail["already"], second.detail["tagged"]) == (False, [resource.shown], [])
    assert kind.tags(resource.name) == {**OWN, **OURS}


def test_restore_gives_back_exactly_the_tags_before_and_twice_is_once(kind):
    resource = kind.create("orders-a", OWN)
    request = _request(resource)
    before = kind.tags(resource.name)

    untagged = restore_resource_tags(request)
    assert (untagged.changed, untagged.detail["already"]) == (False, [resource.shown]), "an undo without the step"
    assert kind.tags(resource.name) == before

    tag_resource(request)
    restored = restore_resource_tags(request)
    assert (restored.changed, restored.detail["restored"]) == (True, [resource.shown])
    assert kind.tags(resource.name) == before == OWN

    again = restore_resource_tags(request)
    assert (again.changed, again.detail["already"]) == (False, [resource.shown])
    assert kind.tags(resource.name) == OWN


def test_a_resource_without_tags_gets_exactly_the_two_and_has_none_again_after_restore(kind):
    """For a bucket this is one with no tag set at all: restoring deletes the set rather than leaving it empty."""
    resource = kind.create("orders-a")
    before = kind.tags(resource.name)
    assert not before
    if kind.kind is TaggableKind.S3_BUCKET:
        assert before is None, "a bucket created without tags has no tag set"
    request = _request(resource)

    assert tag_resource(request).changed is True
    assert kind.tags(resource.name) == OURS
    assert restore_resource_tags(request).changed is True
    assert kind.tags(resource.name) == before


@pytest.mark.parametrize(
    ("own", "earlier"),
    [(OWN, EARLIER_INCIDENT_AND_STATUS), ({}, EARLIER_INCIDENT)],
    ids=["own-tags-and-an-earlier-id-and-status", "only-an-earlier-incident-id"],
)
def test_restore_puts_back_an_earlier_incidents_values(kind, own, earlier):
    """Both keys get their earlier values back; a key the earlier incident did not leave goes."""
    resource = kind.create("orders-a", {**own, **earlier})
    before = kind.tags(resource.name)
    assert before == {**own, **earlier}
    request = _request(resource)

    assert tag_resource(request).changed is True
    assert kind.tags(resource.name) == {**own, **OURS}, "this incident's values replace the earlier ones"
    assert restore_resource_tags(request).changed is True
    assert kind.tags(resource.name) == before


@pytest.mark.parametrize("own", [OWN, {}], ids=["with-own-tags", "without-tags"])
def test_restore_leaves_tags_a_person_changed_during_the_incident_alone(kind, own):
    resource = kind.create("orders-a", own)
    request = _request(resource)
    tag_resource(request)

    by_hand = {"ticket": "SEC-4711"} | ({"app": "shop-quarantined"} if own else {})
    kind.tag_by_hand(resource.name, by_hand)
    assert restore_resource_tags(request).changed is True
    assert kind.tags(resource.name) == {**own, **by_hand}, "only irflow's two keys are restored"


def test_a_resource_deleted_meanwhile_is_reported_gone_and_the_others_are_still_handled(kind):
    kept, deleted = kind.create("orders-a", OWN), kind.create("orders-b", OWN)
    request = _request(kept, deleted)
    kind.delete(deleted.name)

    tagged = tag_resource(request)
    assert (tagged.changed, tagged.detail["tagged"], tagged.detail["gone"]) == (True, [kept.shown], [deleted.shown])
    assert kind.tags(kept.name) == {**OWN, **OURS}

    restored = restore_resource_tags(request)
    assert (restored.changed, restored.detail["restored"], restored.detail["gone"]) == (
        True,
        [kept.shown],
        [deleted.shown],
    )
    assert kind.tags(kept.name) == OWN


def test_when_every_resource_is_gone_it_is_not_found(kind):
    first, second = kind.create("orders-a", OWN), kind.create("orders-b")
    request = _request(first, second)
    kind.delete(first.name)
    kind.delete(second.name)
    for activity in (tag_resource, restore_resource_tags):
        with pytest.raises(ApplicationError) as gone:
            activity(request)
        assert gone.value.type == NOT_FOUND and gone.value.non_retryable
        assert first.shown in str(gone.value) and second.shown in str(gone.value)


def test_only_what_is_not_yet_ours_is_written(kind):
    """A resource already carrying this incident's id (a retried step, or a second finding) only gets the status."""
    resource = kind.create("orders-a", {**OWN, INCIDENT_TAG: INCIDENT_ID})
    request = _request(resource)
    assert tag_resource(request).changed is True
    assert kind.tags(resource.name) == {**OWN, **OURS}
    assert restore_resource_tags(request).changed is True
    assert kind.tags(resource.name) == {**OWN, INCIDENT_TAG: INCIDENT_ID}


# --- the playbooks' own step inputs, on the demo account's resources of every kind ---


def _observed_tags(workload, function_arn: str, rds_arns: list[str]) -> dict[str, Tags | None]:
    """Every demo resource's tags, read back from AWS."""
    ec2, iam, s3 = boto3.client("ec2"), boto3.client("iam"), S3Buckets()
    instance = ec2.describe_instances(InstanceIds=[workload.instance_id])["Reservations"][0]["Instances"][0]
    rds = boto3.client("rds", region_name=workload.region)
    observed = {
        "instance": _pairs(instance.get("Tags")),
        "user": _pairs(iam.list_user_tags(UserName=workload.iam_user)["Tags"]),
        "role": _pairs(iam.list_role_tags(RoleName=workload.role_name)["Tags"]),
        "bucket": s3.tags(workload.public_bucket),
        "function": dict(boto3.client("lambda").list_tags(Resource=function_arn)["Tags"]),
    }
    for arn in rds_arns:
        observed[arn] = _pairs(rds.list_tags_for_resource(ResourceName=arn)["TagList"])
    return observed


def test_every_playbooks_step_input_marks_its_resources_and_restore_undoes_it(workload):
    """tag_request_for on each playbook's real step input (its describe step's prior state): everything it
    names gets the two tags, and restoring brings the whole account back to what it was."""
    moto_fidelity_lambda.apply()
    where = {"incident_id": INCIDENT_ID, "account_id": workload.account_id, "region": workload.region}
    function = seed_lambda_function(workload.account_id, workload.region)
    function_name = function.function_name
    database = seed_rds_instance(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)
    aurora = seed_aurora_cluster(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)

    def step_input(step_type, describe, target):
        return step_type(target=target, prior=describe(target))

    step_inputs = [
        step_input(Ec2StepInput, describe_instance_context, Ec2Target(**where, instance_id=workload.instance_id)),
        step_input(IamUserStepInput, describe_iam_user_context, IamUserTarget(**where, user_name=workload.iam_user)),
        step_input(IamRoleStepInput, describe_iam_role_context, IamRoleTarget(**where, role_name=workload.role_name)),
        step_input(BucketStepInput, describe_bucket_context, BucketTarget(**where, bucket=workload.public_bucket)),
        step_input(LambdaStepInput, describe_lambda_context, LambdaTarget(**where, function_name=function_name)),
        *(
            step_input(DbStepInput, describe_db_instance_context, DbTarget(**where, db_instance_identifier=identifier))
            for identifier in (database.db_instance_id, aurora.db_instance_id)
        ),
    ]
    requests = [tag_request_for(s) for s in step_inputs]
    rds_arns = [r.name for request in requests for r in request.resources if r.kind is TaggableKind.RDS]
    assert len(rds_arns) == 4, "the instance, then both Aurora members and their cluster"
    before = _observed_tags(workload, function.function_arn, rds_arns)
    assert before["bucket"] == {"app": "shop"} and before["role"] == {}

    assert all(tag_resource(request).changed for request in requests)
    contained = _observed_tags(workload, function.function_arn, rds_arns)
    assert contained == {name: {**(tags or {}), **OURS} for name, tags in before.items()}
    assert observed_function(function)["tags"] == {"app": "shop", "team": "media", **OURS}
    assert not any(tag_resource(request).changed for request in requests)

    assert all(restore_resource_tags(request).changed for request in reversed(requests))
    assert _observed_tags(workload, function.function_arn, rds_arns) == before
    assert not any(restore_resource_tags(request).changed for request in requests)
