"""GuardDuty's findings as they arrive: which of its shapes a record is (`shape_of`), PascalCase GetFindings output in
GuardDuty's camelCase (`pascal_to_camel`), and GuardDuty's own vocabulary, camelCase, only the parts irflow reads (the
rest is kept raw). `models.finding` makes irflow's `Finding` of them; `models.sequence_parsing` reads an attack
sequence's resources with the same base model and parts. Pure: no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class GuardDutyModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Tag(GuardDutyModel):
    key: str
    value: str | None = None


class SecurityGroupRef(GuardDutyModel):
    group_id: str | None = None
    group_name: str | None = None


class NetworkInterface(GuardDutyModel):
    network_interface_id: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    private_ip_address: str | None = None
    public_ip: str | None = None
    security_groups: list[SecurityGroupRef] = Field(default_factory=list)


class InstanceProfileRef(GuardDutyModel):
    arn: str | None = None
    id: str | None = None


class InstanceDetails(GuardDutyModel):
    instance_id: str | None = None
    instance_type: str | None = None
    instance_state: str | None = None
    availability_zone: str | None = None
    image_id: str | None = None
    platform: str | None = None
    iam_instance_profile: InstanceProfileRef | None = None
    network_interfaces: list[NetworkInterface] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)


class AccessKeyDetails(GuardDutyModel):
    access_key_id: str | None = None
    principal_id: str | None = None
    user_name: str | None = None
    user_type: str | None = None


class S3BucketDetail(GuardDutyModel):
    name: str | None = None
    arn: str | None = None
    type: str | None = None
    tags: list[Tag] = Field(default_factory=list)


class Resource(GuardDutyModel):
    resource_type: str
    instance_details: InstanceDetails | None = None
    access_key_details: AccessKeyDetails | None = None
    s3_bucket_details: list[S3BucketDetail] = Field(default_factory=list)
    eks_cluster_details: dict[str, Any] | None = None
    rds_db_instance_details: dict[str, Any] | None = None
    rds_db_user_details: dict[str, Any] | None = None
    lambda_details: dict[str, Any] | None = None
    ecs_cluster_details: dict[str, Any] | None = None
    container_details: dict[str, Any] | None = None


class Service(GuardDutyModel):
    action: dict[str, Any] | None = None
    archived: bool = False
    count: int = 1
    event_first_seen: datetime | None = None
    event_last_seen: datetime | None = None
    additional_info: dict[str, Any] | None = None
    resource_role: str | None = None
    detector_id: str | None = None
    detection: Any = None  # an attack sequence's details: read by models.sequence_parsing, leniently

    @field_validator("additional_info", mode="before")
    @classmethod
    def _decode_get_findings_additional_info(cls, value: Any) -> Any:
        # GetFindings returns AdditionalInfo as {"Value": "<json text>", "Type": "default"}.
        if isinstance(value, dict) and isinstance(value.get("value"), str) and set(value) <= {"value", "type"}:
            try:
                decoded = json.loads(value["value"])
            except json.JSONDecodeError:
                return {"value": value["value"]}
            return decoded if isinstance(decoded, dict) else {"value": decoded}
        return value


class GuardDutyFinding(GuardDutyModel):
    schema_version: str | None = None
    account_id: str
    region: str
    partition: str = "aws"
    id: str
    arn: str | None = None
    type: str
    resource: Resource
    service: Service = Field(default_factory=Service)
    severity: float = Field(ge=0, le=10)
    created_at: datetime
    updated_at: datetime
    title: str = ""
    description: str = ""


def shape_of(record: dict[str, Any]) -> str:
    """Which shape a record is: a GuardDuty event, GetFindings output, a bare finding, ASFF, or unknown."""
    if "detail-type" in record or ("detail" in record and "source" in record):
        return "eventbridge_envelope"
    if "AwsAccountId" in record or "ProductArn" in record:
        return "asff"
    if any(k in record for k in ("AccountId", "SchemaVersion", "Resource", "Service")) and "Type" in record:
        return "getfindings_pascalcase"
    if "type" in record and any(k in record for k in ("accountId", "schemaVersion", "service", "resource")):
        return "finding_camelcase"
    return "unknown"


def pascal_to_camel(value: Any) -> Any:
    """GetFindings' PascalCase keys as GuardDuty's camelCase, at every depth."""
    if isinstance(value, dict):
        return {(k[:1].lower() + k[1:] if isinstance(k, str) else k): pascal_to_camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal_to_camel(v) for v in value]
    return value
