"""Triage-only evidence: describe whatever the finding names, as far as the APIs allow, and keep it.

Nothing here changes a resource. Each description is best effort: a failure (no permission, resource
gone, service not enabled) is written into the document instead of failing the incident.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from activities.aws import aws_activity, client
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from irflow.models.evidence import EvidenceObject
from irflow.models.finding import Finding
from irflow.models.incident import TriageInput


def _describers(finding: Finding) -> dict[str, Callable[[], Any]]:
    resource, region, account = finding.resource, finding.region, finding.account_id
    found: dict[str, Callable[[], Any]] = {}
    if resource.instance_id:
        found["ec2:DescribeInstances"] = lambda: client("ec2", region, account).describe_instances(
            InstanceIds=[resource.instance_id]
        )["Reservations"]
    name = resource.resource_id
    if resource.resource_type == "EKSCluster" and name:
        found["eks:DescribeCluster"] = lambda: client("eks", region, account).describe_cluster(name=name)["cluster"]
    if resource.resource_type in ("ECSCluster", "ECS") and name:
        found["ecs:DescribeClusters"] = lambda: client("ecs", region, account).describe_clusters(clusters=[name])[
            "clusters"
        ]
    if resource.resource_type == "Lambda" and name:
        found["lambda:GetFunctionConfiguration"] = lambda: client("lambda", region, account).get_function_configuration(
            FunctionName=name
        )
    if resource.resource_type in ("RDSDBInstance", "RDSLimitlessDB") and name:
        found["rds:DescribeDBInstances"] = lambda: client("rds", region, account).describe_db_instances(
            DBInstanceIdentifier=name
        )["DBInstances"]
    for bucket in resource.bucket_names:
        found[f"s3:GetBucketPolicyStatus {bucket}"] = lambda b=bucket: client(
            "s3", region, account
        ).get_bucket_policy_status(Bucket=b)["PolicyStatus"]
    if resource.user_name and resource.user_type not in ("Root", "AssumedRole"):
        found["iam:GetUser"] = lambda: client("iam", region, account).get_user(UserName=resource.user_name)["User"]
        found["iam:ListAccessKeys"] = lambda: client("iam", region, account).list_access_keys(
            UserName=resource.user_name
        )["AccessKeyMetadata"]
    return found


@aws_activity(
    "ec2:DescribeInstances",
    "eks:DescribeCluster",
    "ecs:DescribeClusters",
    "lambda:GetFunctionConfiguration",
    "rds:DescribeDBInstances",
    "s3:GetBucketPolicyStatus",
    "iam:GetUser",
    "iam:ListAccessKeys",
    *EVIDENCE_WRITE_ACTIONS,
)
def describe_related_resources(request: TriageInput) -> EvidenceObject:
    finding = request.finding
    descriptions: dict[str, Any] = {}
    for api, describe in _describers(finding).items():
        try:
            descriptions[api] = describe()
        except Exception as error:  # noqa: BLE001 (best effort by design: the error is the evidence)
            descriptions[api] = {"error": f"{type(error).__name__}: {error}"}
    document = {
        "collected_at": datetime.now(UTC).isoformat(),
        "finding_id": finding.id,
        "finding_type": finding.type,
        "resource_type": finding.resource.resource_type,
        "resource_id": finding.resource.resource_id,
        "resource": finding.resource.model_dump(mode="json"),
        "descriptions": descriptions or {"note": f"irflow has no describer for {finding.resource.resource_type}"},
    }
    kind = finding.resource.resource_type.lower()
    return store_evidence(request.incident_id, f"related/{kind}.json", to_json_bytes(document), "related-resources")
