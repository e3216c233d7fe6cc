"""What the incident tags mark on each kind of resource, made from a playbook's step input alone."""

from __future__ import annotations

from datetime import UTC, datetime

from irflow.models.ec2 import Ec2StepInput, Ec2Target, InstanceContext
from irflow.models.iam import (
    IamRoleContext,
    IamRoleStepInput,
    IamRoleTarget,
    IamUserContext,
    IamUserStepInput,
    IamUserTarget,
)
from irflow.models.lambda_function import LambdaContext, LambdaStepInput, LambdaTarget
from irflow.models.rds import DbClusterContext, DbInstanceContext, DbInstanceMember, DbStepInput, DbTarget
from irflow.models.s3 import BucketContext, BucketStepInput, BucketTarget
from irflow.models.tagging import CONTAINED, INCIDENT_TAG, STATUS_TAG, TaggableKind, tag_request_for

NOW = datetime(2026, 12, 7, 12, 58, 19, tzinfo=UTC)
WHERE = {"incident_id": "inc-7", "account_id": "111122223333", "region": "eu-west-1"}


def test_the_marks_are_the_incident_and_contained():
    step = Ec2StepInput(
        target=Ec2Target(**WHERE, instance_id="i-0a"),
        prior=InstanceContext(
            instance_id="i-0a",
            account_id="111122223333",
            region="eu-west-1",
            state="running",
            tags={"app": "shop"},
            captured_at=NOW,
        ),
    )
    request = tag_request_for(step)
    assert (request.incident_id, request.account_id, request.region) == ("inc-7", "111122223333", "eu-west-1")
    assert request.wanted == {INCIDENT_TAG: "inc-7", STATUS_TAG: CONTAINED}
    [resource] = request.resources
    assert (resource.kind, resource.name, resource.prior) == (TaggableKind.EC2_INSTANCE, "i-0a", {"app": "shop"})


def test_users_roles_and_buckets_are_named_as_their_tagging_apis_name_them():
    user = IamUserStepInput(
        target=IamUserTarget(**WHERE, user_name="alice"),
        prior=IamUserContext(
            user_name="alice",
            user_arn="arn:aws:iam::111122223333:user/alice",
            user_id="AIDA1",
            tags={"team": "ops"},
            captured_at=NOW,
        ),
    )
    role = IamRoleStepInput(
        target=IamRoleTarget(**WHERE, role_name="web"),
        prior=IamRoleContext(
            role_name="web", role_arn="arn:aws:iam::111122223333:role/web", role_id="AROA1", captured_at=NOW
        ),
    )
    bucket = BucketStepInput(
        target=BucketTarget(**WHERE, bucket="shop-assets"), prior=BucketContext(bucket="shop-assets", captured_at=NOW)
    )
    assert [(r.kind, r.name, r.prior) for r in tag_request_for(user).resources] == [
        (TaggableKind.IAM_USER, "alice", {"team": "ops"})
    ]
    assert [(r.kind, r.name) for r in tag_request_for(role).resources] == [(TaggableKind.IAM_ROLE, "web")]
    assert [(r.kind, r.name) for r in tag_request_for(bucket).resources] == [(TaggableKind.S3_BUCKET, "shop-assets")]


def test_a_function_is_tagged_by_its_arn_and_shown_by_its_name():
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:resizer"
    step = LambdaStepInput(
        target=LambdaTarget(**WHERE, function_name="resizer"),
        prior=LambdaContext(
            function_name="resizer",
            function_arn=arn,
            role_arn="arn:aws:iam::111122223333:role/r",
            role_name="r",
            captured_at=NOW,
        ),
    )
    [resource] = tag_request_for(step).resources
    assert (resource.kind, resource.name, resource.shown) == (TaggableKind.LAMBDA_FUNCTION, arn, "resizer")


def test_an_aurora_cluster_is_marked_on_every_member_and_the_cluster():
    def member(name: str, tags: dict) -> DbInstanceMember:
        arn = f"arn:aws:rds:eu-west-1:111122223333:db:{name}"
        return DbInstanceMember(identifier=name, arn=arn, status="available", publicly_accessible=False, tags=tags)

    cluster = DbClusterContext(
        identifier="orders",
        arn="arn:aws:rds:eu-west-1:111122223333:cluster:orders",
        engine="aurora-postgresql",
        status="available",
        tags={"data": "orders"},
    )
    step = DbStepInput(
        target=DbTarget(**WHERE, db_instance_identifier="orders-1"),
        prior=DbInstanceContext(
            db_instance_identifier="orders-1",
            db_instance_arn=member("orders-1", {}).arn,
            engine="aurora-postgresql",
            status="available",
            publicly_accessible=False,
            cluster=cluster,
            instances=[member("orders-1", {INCIDENT_TAG: "inc-earlier"}), member("orders-2", {})],
            captured_at=NOW,
        ),
    )
    resources = tag_request_for(step).resources
    assert [(r.kind, r.shown) for r in resources] == [
        (TaggableKind.RDS, "orders-1"),
        (TaggableKind.RDS, "orders-2"),
        (TaggableKind.RDS, "orders"),
    ]
    assert [r.prior for r in resources] == [{INCIDENT_TAG: "inc-earlier"}, {}, {"data": "orders"}]
    assert resources[2].name == cluster.arn
