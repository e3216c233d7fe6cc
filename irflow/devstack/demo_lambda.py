"""A Lambda function worth containing, for the embedded AWS account (moto) and the tests.

An image resizer running under its own execution role (with a path, as the console creates them), with
reserved concurrency, a published version behind an alias, an SQS queue feeding it through an event
source mapping, a public function URL, and a resource-based policy that lets S3, a partner account,
everyone (through the URL) and the account's own principals invoke it.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from irflow.devstack.demo import sample_finding

PARTNER_ACCOUNT = "111122223333"
HANDLER_SOURCE = '''import json


def handler(event, context):
    """Resize the uploaded image (the demo only echoes the event)."""
    return {"statusCode": 200, "body": json.dumps({"records": len(event.get("Records", []))})}
'''


@dataclass(frozen=True)
class DemoLambda:
    account_id: str
    region: str
    function_name: str
    function_arn: str
    role_name: str
    role_arn: str
    alias: str
    reserved_concurrency: int | None
    queue_url: str
    queue_arn: str
    mapping_uuid: str
    # Statement ids of the function's resource policy: those for principals outside the account, and not.
    outside_statement_ids: tuple[str, ...]
    own_statement_ids: tuple[str, ...]
    code_sha256: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def deployment_package(source: str = HANDLER_SOURCE) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("index.py", date_time=(2025, 1, 1, 0, 0, 0))  # fixed: the same bytes every time
        info.external_attr = 0o644 << 16
        archive.writestr(info, source)
    return buffer.getvalue()


def seed_lambda_function(
    account_id: str,
    region: str = "us-east-1",
    name: str = "demo",
    reserved_concurrency: int | None = 25,
    session: boto3.session.Session | None = None,
) -> DemoLambda:
    """Create the function in `account_id` (through `session`, for another account than the default's)."""
    session = session or boto3.session.Session()
    iam = session.client("iam", region_name=region)
    lam = session.client("lambda", region_name=region)
    sqs = session.client("sqs", region_name=region)

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role_name = f"{name}-image-resizer-role"
    role_arn = iam.create_role(RoleName=role_name, Path="/service-role/", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]

    function_name = f"{name}-image-resizer"
    created = lam.create_function(
        FunctionName=function_name,
        Runtime="python3.12",
        Role=role_arn,
        Handler="index.handler",
        Code={"ZipFile": deployment_package()},
        Description="resizes uploaded product images",
        Timeout=30,
        MemorySize=256,
        Environment={"Variables": {"UPLOAD_BUCKET": f"{name}-uploads-{account_id}", "LOG_LEVEL": "info"}},
        Tags={"app": "shop", "team": "media"},
    )
    function_arn = created["FunctionArn"]
    if reserved_concurrency is not None:
        lam.put_function_concurrency(FunctionName=function_name, ReservedConcurrentExecutions=reserved_concurrency)
    version = lam.publish_version(FunctionName=function_name)["Version"]
    alias = "live"
    lam.create_alias(FunctionName=function_name, Name=alias, FunctionVersion=version)

    queue_url = sqs.create_queue(QueueName=f"{name}-image-uploads")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping_uuid = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=function_name, BatchSize=10)[
        "UUID"
    ]

    lam.add_permission(
        FunctionName=function_name,
        StatementId="s3-uploads-invoke",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{name}-uploads-{account_id}",
        SourceAccount=account_id,
    )
    lam.add_permission(
        FunctionName=function_name,
        StatementId="partner-invoke",
        Action="lambda:InvokeFunction",
        Principal=f"arn:aws:iam::{PARTNER_ACCOUNT}:root",
    )
    lam.create_function_url_config(FunctionName=function_name, AuthType="NONE")
    lam.add_permission(
        FunctionName=function_name,
        StatementId="FunctionURLAllowPublicAccess",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    lam.add_permission(
        FunctionName=function_name,
        StatementId="ops-invoke",
        Action="lambda:InvokeFunction",
        Principal=f"arn:aws:iam::{account_id}:root",
    )
    return DemoLambda(
        account_id=account_id,
        region=region,
        function_name=function_name,
        function_arn=function_arn,
        role_name=role_name,
        role_arn=role_arn,
        alias=alias,
        reserved_concurrency=reserved_concurrency,
        queue_url=queue_url,
        queue_arn=queue_arn,
        mapping_uuid=mapping_uuid,
        outside_statement_ids=("s3-uploads-invoke", "partner-invoke", "FunctionURLAllowPublicAccess"),
        own_statement_ids=("ops-invoke",),
        code_sha256=created["CodeSha256"],
    )


def sample_lambda_finding(
    function_name: str,
    function_arn: str,
    role_arn: str,
    account_id: str = "123456789012",
    region: str = "us-east-1",
    severity: float = 8.0,
    finding_type: str = "Backdoor:Lambda/C&CActivity.B",
    finding_id: str | None = None,
    tags: dict[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A GuardDuty event (Lambda Protection, from the function's network activity): the function talks to
    a known command-and-control server."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    event = sample_finding(
        "i-0123456789abcdef0",
        account_id,
        region,
        severity=severity,
        finding_type=finding_type,
        finding_id=finding_id or "d4e5f60718293a4b5c6d7e8f901a2b3c",
        now=now,
    )
    detail = event["detail"]
    detail["resource"] = {
        "resourceType": "Lambda",
        "lambdaDetails": {
            "functionArn": function_arn,
            "functionName": function_name,
            "description": "resizes uploaded product images",
            "lastModifiedAt": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "revisionId": "8c5f6b2e-1d3a-4f7b-9e0c-2a1b3c4d5e6f",
            "functionVersion": "$LATEST",
            "role": role_arn,
            "vpcConfig": {"subnetIds": [], "securityGroups": []},
            "tags": [{"key": k, "value": v} for k, v in sorted((tags or {"app": "shop", "team": "media"}).items())],
        },
    }
    detail["service"]["action"] = {
        "actionType": "NETWORK_CONNECTION",
        "networkConnectionAction": {
            "connectionDirection": "OUTBOUND",
            "protocol": "TCP",
            "blocked": False,
            "remoteIpDetails": {"ipAddressV4": "198.51.100.77", "country": {"countryName": "Unknown"}},
            "remotePortDetails": {"port": 443, "portName": "HTTPS"},
            "localPortDetails": {"port": 39512, "portName": "Unknown"},
        },
    }
    detail["service"]["resourceRole"] = "ACTOR"
    detail["service"]["featureName"] = "LambdaNetworkLogs"
    detail["title"] = f"Lambda function {function_name} is communicating with a command and control server."
    detail["description"] = (
        f"Lambda function {function_name} is querying or connecting to 198.51.100.77, an IP address "
        "associated with a known command and control server."
    )
    return event


def observed_function(demo: DemoLambda, session: boto3.session.Session | None = None) -> dict[str, Any]:
    """What a responder would check on the function, read straight from (moto's) AWS."""
    session = session or boto3.session.Session()
    lam = session.client("lambda", region_name=demo.region)
    iam = session.client("iam", region_name=demo.region)
    try:
        statements = json.loads(lam.get_policy(FunctionName=demo.function_name)["Policy"])["Statement"]
    except lam.exceptions.ResourceNotFoundException:
        statements = []
    mappings = lam.list_event_source_mappings(FunctionName=demo.function_name)["EventSourceMappings"]
    return {
        "reserved_concurrency": lam.get_function_concurrency(FunctionName=demo.function_name).get(
            "ReservedConcurrentExecutions"
        ),
        "tags": lam.list_tags(Resource=demo.function_arn)["Tags"],
        "role_policies": sorted(iam.list_role_policies(RoleName=demo.role_name)["PolicyNames"]),
        "mappings": {m["UUID"]: m["State"] for m in mappings},
        "policy_statements": sorted(s["Sid"] for s in statements),
        "code_sha256": lam.get_function(FunctionName=demo.function_name)["Configuration"]["CodeSha256"],
    }
