"""The stand-in account made ready (activities/readiness.py all green): what the demo workload
(irflow/devstack/demo.py) leaves to the account's administrator, done as they would do it.

- GuardDuty on, publishing updated findings every 15 minutes;
- a multi-region trail logging into a bucket of its own;
- the findings intake (infra/findings-intake.yaml);
- the evidence bucket versioned and closed to the public (the workload gave it Object Lock and SSE-KMS);
- the worker's role with the generated worker policy (`irflow policy`) inline.

`make_ready` returns the intake and the IRFLOW_* settings that go with the workload's own
(`DemoWorkload.worker_environment`). Never point it at a real account: it creates resources there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3

from irflow.devstack.demo import DemoWorkload
from irflow.devstack.intake_stack import IntakeStack, deploy_intake_stack
from irflow.iam_policy import EVIDENCE_BUCKET_PLACEHOLDER, worker_policy

WORKER_ROLE = "irflow-worker"
WORKER_POLICY = "irflow-worker"
TRAIL = "irflow-trail"
INTAKE_STACK = "irflow-intake"


@dataclass(frozen=True)
class ReadyAccount:
    intake: IntakeStack
    detector_id: str
    trail_arn: str
    trail_bucket: str
    worker_role_arn: str
    settings: dict[str, str]  # the IRFLOW_* settings beside the workload's own


def make_ready(workload: DemoWorkload, stack_name: str = INTAKE_STACK) -> ReadyAccount:
    region = workload.region
    detector_id = enable_guardduty(region)
    trail_bucket, trail_arn = logging_trail(workload)
    intake = deploy_intake_stack(region=region, stack_name=stack_name)
    protect_evidence_bucket(workload)
    role_arn = worker_role(workload)
    settings = {
        "IRFLOW_WORKER_ROLE_ARN": role_arn,
        "IRFLOW_INTAKE_STACK_NAME": intake.stack_name,
        "IRFLOW_QUEUE_URLS": intake.queue_url,
        "IRFLOW_READINESS_REGIONS": region,
        # every listener started on these settings shares its detection windows and dead-letter claims
        **({"IRFLOW_STATE_TABLE": intake.state_table_name} if intake.state_table_name else {}),
    }
    return ReadyAccount(intake, detector_id, trail_arn, trail_bucket, role_arn, settings)


def enable_guardduty(region: str) -> str:
    """The region's detector (there is one per account and region), enabled, publishing every 15 minutes."""
    guardduty = boto3.client("guardduty", region_name=region)
    existing = guardduty.list_detectors()["DetectorIds"]
    if existing:
        guardduty.update_detector(DetectorId=existing[0], Enable=True, FindingPublishingFrequency="FIFTEEN_MINUTES")
        return existing[0]
    return guardduty.create_detector(Enable=True, FindingPublishingFrequency="FIFTEEN_MINUTES")["DetectorId"]


def logging_trail(workload: DemoWorkload) -> tuple[str, str]:
    """A multi-region trail into its own bucket (with the bucket policy CloudTrail needs), logging: (bucket, ARN)."""
    region, account = workload.region, workload.account_id
    bucket = f"irflow-trail-{account}-{region}"
    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    trail_source = {"StringEquals": {"aws:SourceArn": f"arn:aws:cloudtrail:{region}:{account}:trail/{TRAIL}"}}
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudTrailAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": trail_source,
            },
            {
                "Sid": "CloudTrailWrite",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/AWSLogs/{account}/*",
                "Condition": {
                    "StringEquals": {**trail_source["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"}
                },
            },
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    cloudtrail = boto3.client("cloudtrail", region_name=region)
    arn = cloudtrail.create_trail(Name=TRAIL, S3BucketName=bucket, IsMultiRegionTrail=True)["TrailARN"]
    cloudtrail.start_logging(Name=TRAIL)
    return bucket, arn


def protect_evidence_bucket(workload: DemoWorkload) -> None:
    s3 = boto3.client("s3", region_name=workload.region)
    bucket = workload.evidence_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})  # Object Lock did already
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def generated_worker_policy(workload: DemoWorkload) -> dict:
    """`irflow policy` for this workload: the evidence bucket named where the settings in force do not name it."""
    text = json.dumps(worker_policy()).replace(EVIDENCE_BUCKET_PLACEHOLDER, workload.evidence_bucket)
    return json.loads(text)


def worker_role(workload: DemoWorkload) -> str:
    """The worker's role (trusted by the account, as a role a worker's host assumes would be), the generated
    policy inline; its ARN."""
    iam = boto3.client("iam", region_name=workload.region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{workload.account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        arn = iam.get_role(RoleName=WORKER_ROLE)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=WORKER_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=WORKER_ROLE,
        PolicyName=WORKER_POLICY,
        PolicyDocument=json.dumps(generated_worker_policy(workload)),
    )
    return arn
