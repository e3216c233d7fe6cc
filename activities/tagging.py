"""The incident tags on every kind of resource, through one pair of activities.

Every playbook's first containment step marks what it contains with `irflow:incident-id` and
`irflow:status=contained`; its undo gives those two keys back exactly the values they had (or removes
them), and leaves every other tag alone. The activities decide which keys to put and which to drop; each
kind differs only in how its API reads tags and applies that change: that is all a `_TagApi` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from activities.aws import aws_activity, client, error_code, not_found, tag_pairs, typed_aws_errors
from activities.ec2_context import DEPARTED_STATES
from activities.lambda_function import function_tags, unqualified_arn
from irflow.models.incident import StepResult
from irflow.models.tagging import INCIDENT_TAGS, TaggableKind, TaggedResource, TagRequest

Tags = dict[str, str]


# apply(client, name, current tags, keys to put, keys to drop): every other tag stays as it is.
Apply = Callable[[Any, str, Tags, Tags, list[str]], None]


@dataclass(frozen=True)
class _TagApi:
    service: str
    read: Callable[[Any, str], Tags | None]  # None: the resource is gone
    apply: Apply
    iam_actions: tuple[str, ...]


def _by_key(add: Callable[[Any, str, Tags], Any], remove: Callable[[Any, str, list[str]], Any]) -> Apply:
    """For the APIs that tag and untag key by key (all but S3's)."""

    def apply(aws: Any, name: str, current: Tags, put: Tags, drop: list[str]) -> None:
        if put:
            add(aws, name, put)
        if drop:
            remove(aws, name, drop)

    return apply


def _absent(codes: set[str], read: Callable[[], Tags | None]) -> Tags | None:
    try:
        return read()
    except ClientError as error:
        if error_code(error) in codes:
            return None
        raise


def _listed(tags: Tags) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


# --- EC2 instances ---


def _ec2_read(ec2, instance_id: str) -> Tags | None:
    def read() -> Tags | None:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        # Terminated instances linger in describe calls: there is nothing left to mark.
        if not instances or instances[0]["State"]["Name"] in DEPARTED_STATES:
            return None
        return tag_pairs(instances[0].get("Tags"))

    return _absent({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}, read)


_EC2 = _TagApi(
    service="ec2",
    read=_ec2_read,
    apply=_by_key(
        lambda ec2, name, tags: ec2.create_tags(Resources=[name], Tags=_listed(tags)),
        lambda ec2, name, keys: ec2.delete_tags(Resources=[name], Tags=[{"Key": k} for k in keys]),
    ),
    iam_actions=("ec2:DescribeInstances", "ec2:CreateTags", "ec2:DeleteTags"),
)

# --- IAM users and roles ---

_IAM_USER = _TagApi(
    service="iam",
    read=lambda iam, name: _absent({"NoSuchEntity"}, lambda: tag_pairs(iam.list_user_tags(UserName=name).get("Tags"))),
    apply=_by_key(
        lambda iam, name, tags: iam.tag_user(UserName=name, Tags=_listed(tags)),
        lambda iam, name, keys: iam.untag_user(UserName=name, TagKeys=keys),
    ),
    iam_actions=("iam:ListUserTags", "iam:TagUser", "iam:UntagUser"),
)
_IAM_ROLE = _TagApi(
    service="iam",
    read=lambda iam, name: _absent({"NoSuchEntity"}, lambda: tag_pairs(iam.list_role_tags(RoleName=name).get("Tags"))),
    apply=_by_key(
        lambda iam, name, tags: iam.tag_role(RoleName=name, Tags=_listed(tags)),
        lambda iam, name, keys: iam.untag_role(RoleName=name, TagKeys=keys),
    ),
    iam_actions=("iam:ListRoleTags", "iam:TagRole", "iam:UntagRole"),
)

# --- S3 buckets: PutBucketTagging replaces the whole set, so a change is one write of the merged set ---


def _s3_read(s3, bucket: str) -> Tags | None:
    def read() -> Tags | None:
        try:
            return tag_pairs(s3.get_bucket_tagging(Bucket=bucket).get("TagSet"))
        except ClientError as error:
            if error_code(error) == "NoSuchTagSet":
                return {}
            raise

    return _absent({"NoSuchBucket", "404"}, read)


def _s3_apply(s3, bucket: str, current: Tags, put: Tags, drop: list[str]) -> None:
    tags = {**{k: v for k, v in current.items() if k not in drop}, **put}
    if tags:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _listed(tags)})
    else:
        s3.delete_bucket_tagging(Bucket=bucket)  # an empty TagSet is refused: no tags is no tag set


_S3 = _TagApi(
    service="s3",
    read=_s3_read,
    apply=_s3_apply,
    iam_actions=("s3:GetBucketTagging", "s3:PutBucketTagging"),
)

# --- Lambda functions (by ARN, unqualified: tags belong to the function, not a version) ---


_LAMBDA = _TagApi(
    service="lambda",
    read=lambda lam, arn: _absent({"ResourceNotFoundException"}, lambda: function_tags(lam, arn)),
    apply=_by_key(
        lambda lam, arn, tags: lam.tag_resource(Resource=unqualified_arn(arn), Tags=tags),
        lambda lam, arn, keys: lam.untag_resource(Resource=unqualified_arn(arn), TagKeys=keys),
    ),
    iam_actions=("lambda:ListTags", "lambda:TagResource", "lambda:UntagResource"),
)

# --- RDS: DB instances and Aurora clusters, by ARN; read through describe, which says when one is gone ---


def _rds_read(rds, arn: str) -> Tags | None:
    identifier = arn.rsplit(":", 1)[-1]
    if ":cluster:" in arn:
        return _absent(
            {"DBClusterNotFoundFault"},
            lambda: tag_pairs(rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0].get("TagList")),
        )
    return _absent(
        {"DBInstanceNotFound", "DBInstanceNotFoundFault"},
        lambda: tag_pairs(rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0].get("TagList")),
    )


_RDS = _TagApi(
    service="rds",
    read=_rds_read,
    apply=_by_key(
        lambda rds, arn, tags: rds.add_tags_to_resource(ResourceName=arn, Tags=_listed(tags)),
        lambda rds, arn, keys: rds.remove_tags_from_resource(ResourceName=arn, TagKeys=keys),
    ),
    iam_actions=(
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "rds:AddTagsToResource",
        "rds:RemoveTagsFromResource",
    ),
)

TAG_APIS: dict[TaggableKind, _TagApi] = {
    TaggableKind.EC2_INSTANCE: _EC2,
    TaggableKind.IAM_USER: _IAM_USER,
    TaggableKind.IAM_ROLE: _IAM_ROLE,
    TaggableKind.S3_BUCKET: _S3,
    TaggableKind.LAMBDA_FUNCTION: _LAMBDA,
    TaggableKind.RDS: _RDS,
}
_EVERY_ACTION = sorted({action for api in TAG_APIS.values() for action in api.iam_actions})


def _each(
    request: TagRequest, change: Callable[[TaggedResource, Tags], tuple[Tags, list[str]]], doing: str
) -> tuple[list[str], list[str], list[str]]:
    """For every resource still there, `change` says which keys to put and which to drop, given its current
    tags; the names changed, already right, and gone. Only when every resource is gone is that a failure
    (NotFound): a deleted Aurora member is not."""
    changed, already, gone = [], [], []
    for resource in request.resources:
        api = TAG_APIS[resource.kind]
        aws = client(api.service, request.region, request.account_id)
        with typed_aws_errors(f"{doing} {resource.kind} {resource.shown}"):
            current = api.read(aws, resource.name)
            if current is None:
                gone.append(resource.shown)
                continue
            put, drop = change(resource, current)
            if put or drop:
                api.apply(aws, resource.name, current, put, drop)
                changed.append(resource.shown)
            else:
                already.append(resource.shown)
    if gone and not (changed or already):
        raise not_found(f"{', '.join(gone)} no longer exist(s) in {request.account_id}/{request.region}")
    return changed, already, gone


@aws_activity(*_EVERY_ACTION)
def tag_resource(request: TagRequest) -> StepResult:
    """Mark the resources as under incident; their own tags stay as they are."""
    wanted = request.wanted

    def mark(resource: TaggedResource, current: Tags) -> tuple[Tags, list[str]]:
        return {k: v for k, v in wanted.items() if current.get(k) != v}, []

    tagged, already, gone = _each(request, mark, "tag")
    return StepResult(changed=bool(tagged), detail={"tags": wanted, "tagged": tagged, "already": already, "gone": gone})


@aws_activity(*_EVERY_ACTION)
def restore_resource_tags(request: TagRequest) -> StepResult:
    """irflow's two keys get back the values they had before containment, or go; nothing else is touched."""

    def restore(resource: TaggedResource, current: Tags) -> tuple[Tags, list[str]]:
        before = {k: resource.prior[k] for k in INCIDENT_TAGS if k in resource.prior}
        put_back = {k: v for k, v in before.items() if current.get(k) != v}
        return put_back, [k for k in INCIDENT_TAGS if k not in before and k in current]

    restored, already, gone = _each(request, restore, "restore tags of")
    return StepResult(changed=bool(restored), detail={"restored": restored, "already": already, "gone": gone})
