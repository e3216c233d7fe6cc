"""RDS DB instances (and the Aurora clusters they belong to): what an incident records before it
changes anything, so that every undo can restore it exactly."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from pydantic import BaseModel, Field

from irflow.models.tagging import TaggableKind, TaggedResource

_NOT_IN_IDENTIFIER = re.compile(r"[^a-z0-9]+")
_DB_ARN = re.compile(r"^arn:[^:]+:rds:[^:]*:[^:]*:db:(?P<name>.+)$")
# The fields of GuardDuty's rdsDbUserDetails, kept as evidence (the password is never in a finding).


class DbTarget(BaseModel):
    incident_id: str
    account_id: str
    region: str
    db_instance_identifier: str
    finding_cluster_identifier: str | None = Field(
        default=None, description="the Aurora cluster as the finding named it; DescribeDBInstances decides"
    )
    db_user: dict[str, str] = Field(
        default_factory=dict, description="rdsDbUserDetails of the finding: user, database, application..."
    )


class DbInstanceMember(BaseModel):
    """One DB instance that containment changes: the one named, or each member of its Aurora cluster."""

    identifier: str
    arn: str
    status: str
    publicly_accessible: bool
    tags: dict[str, str] = Field(default_factory=dict)
    is_cluster_writer: bool | None = None


class DbClusterContext(BaseModel):
    identifier: str
    arn: str
    engine: str
    status: str
    endpoint: str | None = None
    reader_endpoint: str | None = None
    vpc_security_group_ids: list[str] = Field(default_factory=list, description="in the order RDS listed them")
    parameter_group: str | None = None
    iam_database_authentication: bool = False
    deletion_protection: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    members: list[str] = Field(default_factory=list)


class DbInstanceContext(BaseModel):
    db_instance_identifier: str
    db_instance_arn: str
    engine: str
    engine_version: str | None = None
    instance_class: str | None = None
    status: str
    publicly_accessible: bool
    endpoint_address: str | None = None
    endpoint_port: int | None = None
    vpc_id: str | None = None
    vpc_security_group_ids: list[str] = Field(default_factory=list, description="in the order RDS listed them")
    db_subnet_group: str | None = None
    parameter_groups: list[str] = Field(default_factory=list)
    option_groups: list[str] = Field(default_factory=list)
    iam_database_authentication: bool = False
    monitoring_interval: int = 0
    monitoring_role_arn: str | None = None
    log_exports: list[str] = Field(default_factory=list)
    deletion_protection: bool = False
    multi_az: bool = False
    storage_encrypted: bool = False
    read_replicas: list[str] = Field(default_factory=list)
    replica_source: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    cluster: DbClusterContext | None = None
    instances: list[DbInstanceMember] = Field(
        default_factory=list, description="every instance containment changes, each with its own prior state"
    )
    captured_at: datetime

    @property
    def security_groups(self) -> list[str]:
        """The groups containment replaces: an Aurora cluster's (RDS sets them on the cluster), else the instance's."""
        return list(self.cluster.vpc_security_group_ids if self.cluster else self.vpc_security_group_ids)

    @property
    def all_tags(self) -> dict[str, str]:
        return {**(self.cluster.tags if self.cluster else {}), **self.tags}

    def tagged_resources(self) -> list[TaggedResource]:
        """Every instance containment changes (each member, for Aurora), then the cluster itself."""
        resources = [
            TaggedResource(kind=TaggableKind.RDS, name=m.arn, label=m.identifier, prior=m.tags) for m in self.instances
        ]
        if self.cluster:
            cluster = self.cluster
            resources.append(
                TaggedResource(kind=TaggableKind.RDS, name=cluster.arn, label=cluster.identifier, prior=cluster.tags)
            )
        return resources


class DbStepInput(BaseModel):
    target: DbTarget
    prior: DbInstanceContext


def snapshot_identifier(incident_id: str) -> str:
    """The incident's DB (or cluster) snapshot name: derived from the incident id alone, so a retried
    step finds the snapshot it made. RDS identifiers are lower case letters, digits and single hyphens,
    start with a letter, and have at most 255 characters (RDS lower-cases what it is given)."""
    cleaned = _NOT_IN_IDENTIFIER.sub("-", incident_id.lower()).strip("-")
    name = f"irflow-{cleaned}"
    if cleaned != incident_id.lower() or len(name) > 255:
        # Cleaning could make two incident ids look alike: the hash of the exact id keeps them apart.
        digest = hashlib.sha256(incident_id.encode()).hexdigest()[:12]
        name = f"{name[: 255 - len(digest) - 1].rstrip('-')}-{digest}"
    return name


def db_instance_name(resource_id: str) -> str:
    """A DB instance identifier from what a finding names: the identifier itself, or its ARN (ASFF)."""
    matched = _DB_ARN.match(resource_id)
    return matched.group("name") if matched else resource_id
