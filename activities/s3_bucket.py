"""S3 bucket containment: strip the policy statements that grant access to everyone, block public
access, and restore the saved configuration exactly on undo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from activities.aws import aws_activity, client, error_code, not_found, tag_pairs, typed_aws_errors
from activities.evidence import EVIDENCE_WRITE_ACTIONS, checked_identifier, store_evidence, to_json_bytes
from irflow.models.evidence import EvidenceObject
from irflow.models.identifiers import ACCOUNT_ID, BUCKET_NAME, REGION
from irflow.models.incident import StepResult
from irflow.models.s3 import BucketContext, BucketStepInput, BucketTarget

_MISSING = {
    "NoSuchBucketPolicy",
    "NoSuchPublicAccessBlockConfiguration",
    "NoSuchTagSet",
    "OwnershipControlsNotFoundError",
}
_ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def _s3(target: BucketTarget):
    """The client for the bucket's account. What S3 has never accepted as a bucket name (BUCKET_NAME in
    irflow.models.identifiers), or an account or region that is not one, can never succeed: refused at once
    (InvalidRequest), never retried, and never written into a key or a policy."""
    checked_identifier(BUCKET_NAME, target.bucket)
    checked_identifier(ACCOUNT_ID, target.account_id)
    checked_identifier(REGION, target.region)
    return client("s3", target.region, target.account_id)


def _optional(call, *keys: str) -> Any:
    """The value at `keys` of the response, or None when S3 says the configuration does not exist."""
    try:
        value = call()
    except ClientError as error:
        if error_code(error) in _MISSING:
            return None
        raise
    for key in keys:
        value = value[key]
    return value


def _current(target: BucketTarget) -> dict[str, Any]:
    s3, bucket = _s3(target), target.bucket
    with typed_aws_errors(f"read configuration of bucket {bucket}"):
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchBucket"):
                raise not_found(f"bucket {bucket} does not exist") from None
            raise
        return {
            "policy": _optional(lambda: s3.get_bucket_policy(Bucket=bucket), "Policy"),
            "public_access_block": _optional(
                lambda: s3.get_public_access_block(Bucket=bucket), "PublicAccessBlockConfiguration"
            ),
            "tags": tag_pairs(_optional(lambda: s3.get_bucket_tagging(Bucket=bucket), "TagSet")),
        }


@aws_activity(
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketAcl",
    "s3:GetBucketTagging",
)
def describe_bucket_context(target: BucketTarget) -> BucketContext:
    s3, bucket = _s3(target), target.bucket
    current = _current(target)
    with typed_aws_errors(f"describe bucket {bucket}"):
        acl = s3.get_bucket_acl(Bucket=bucket)
        rules = _optional(lambda: s3.get_bucket_ownership_controls(Bucket=bucket), "OwnershipControls", "Rules")
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return BucketContext(
        bucket=bucket,
        location=location or "us-east-1",
        policy=current["policy"],
        public_access_block=current["public_access_block"],
        ownership=rules[0]["ObjectOwnership"] if rules else None,
        acl={"Owner": acl.get("Owner"), "Grants": acl.get("Grants", [])},
        tags=current["tags"],
        captured_at=datetime.now(UTC),
    )


def _grants_everyone(statement: dict[str, Any]) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


def public_statements(policy: str) -> tuple[dict, list[dict], list[str]]:
    """A bucket policy's document, the statements that do not grant everyone access, and the names (Sid, else
    `#<position>`) of those that do: what the step removes, and what its check looks for."""
    document = json.loads(policy)
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    kept = [s for s in statements if not _grants_everyone(s)]
    return document, kept, [s.get("Sid") or f"#{n}" for n, s in enumerate(statements) if _grants_everyone(s)]


@aws_activity(
    "s3:ListBucket",
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:GetBucketTagging",
    "s3:GetBucketPublicAccessBlock",
)
def remove_public_policy_statements(step: BucketStepInput) -> StepResult:
    """Drop every Allow statement whose principal is everyone; the rest of the policy stays as it was."""
    policy = _current(step.target)["policy"]
    if not policy:
        return StepResult(changed=False, detail={"reason": "the bucket has no policy"})
    document, kept, removed = public_statements(policy)
    if not removed:
        return StepResult(changed=False, detail={"reason": "no statement grants access to everyone"})
    s3 = _s3(step.target)
    with typed_aws_errors(f"rewrite the policy of bucket {step.target.bucket}"):
        if kept:
            s3.put_bucket_policy(Bucket=step.target.bucket, Policy=json.dumps({**document, "Statement": kept}))
        else:
            s3.delete_bucket_policy(Bucket=step.target.bucket)
    return StepResult(changed=True, detail={"removed_statements": removed, "kept": len(kept)})


@aws_activity(
    "s3:ListBucket",
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:GetBucketTagging",
    "s3:GetBucketPublicAccessBlock",
)
def restore_bucket_policy(step: BucketStepInput) -> StepResult:
    current = _current(step.target)["policy"]
    if current == step.prior.policy:
        return StepResult(changed=False, detail={})
    s3 = _s3(step.target)
    with typed_aws_errors(f"restore the policy of bucket {step.target.bucket}"):
        if step.prior.policy is None:
            s3.delete_bucket_policy(Bucket=step.target.bucket)
        else:
            s3.put_bucket_policy(Bucket=step.target.bucket, Policy=step.prior.policy)
    return StepResult(changed=True, detail={"policy_restored": step.prior.policy is not None})


@aws_activity(
    "s3:ListBucket",
    "s3:GetBucketPublicAccessBlock",
    "s3:PutBucketPublicAccessBlock",
    "s3:GetBucketPolicy",
    "s3:GetBucketTagging",
)
def block_bucket_public_access(step: BucketStepInput) -> StepResult:
    """All four public-access-block settings on: public ACLs and policies stop working at once."""
    if _current(step.target)["public_access_block"] == _ALL_BLOCKED:
        return StepResult(changed=False, detail=_ALL_BLOCKED)
    with typed_aws_errors(f"block public access to bucket {step.target.bucket}"):
        _s3(step.target).put_public_access_block(
            Bucket=step.target.bucket, PublicAccessBlockConfiguration=dict(_ALL_BLOCKED)
        )
    return StepResult(changed=True, detail=_ALL_BLOCKED)


@aws_activity(
    "s3:ListBucket",
    "s3:GetBucketPublicAccessBlock",
    "s3:PutBucketPublicAccessBlock",
    "s3:GetBucketPolicy",
    "s3:GetBucketTagging",
)
def restore_bucket_public_access(step: BucketStepInput) -> StepResult:
    if _current(step.target)["public_access_block"] == step.prior.public_access_block:
        return StepResult(changed=False, detail={})
    s3 = _s3(step.target)
    with typed_aws_errors(f"restore public access settings of bucket {step.target.bucket}"):
        if step.prior.public_access_block is None:
            s3.delete_public_access_block(Bucket=step.target.bucket)
        else:
            s3.put_public_access_block(
                Bucket=step.target.bucket, PublicAccessBlockConfiguration=step.prior.public_access_block
            )
    return StepResult(changed=True, detail={"public_access_block": step.prior.public_access_block})


@aws_activity("s3:GetBucketVersioning", "s3:GetBucketLogging", "s3:GetEncryptionConfiguration", *EVIDENCE_WRITE_ACTIONS)
def collect_bucket_evidence(step: BucketStepInput) -> EvidenceObject:
    """The configuration before containment (policy, ACL, public-access block, ownership, tags) and the
    settings an investigator asks about next: versioning, access logging, encryption."""
    s3, bucket = _s3(step.target), step.target.bucket
    extra: dict[str, Any] = {}
    for name, call in (
        ("versioning", lambda: s3.get_bucket_versioning(Bucket=bucket)),
        ("logging", lambda: s3.get_bucket_logging(Bucket=bucket)),
        ("encryption", lambda: s3.get_bucket_encryption(Bucket=bucket)),
    ):
        try:
            response = call()
            response.pop("ResponseMetadata", None)
            extra[name] = response
        except ClientError as error:
            extra[name] = {"error": error_code(error)}
    document = {"collected_at": datetime.now(UTC).isoformat(), "prior": step.prior.model_dump(mode="json"), **extra}
    return store_evidence(
        step.target.incident_id, f"s3/{bucket}/configuration.json", to_json_bytes(document), "s3-bucket"
    )
