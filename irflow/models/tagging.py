"""The incident tags: how irflow marks every resource it contains, whatever its kind, so responders and other
tools see at a glance that it is under incident, and how the mark is undone exactly."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field

INCIDENT_TAG = "irflow:incident-id"
STATUS_TAG = "irflow:status"
CONTAINED = "contained"
# The only keys irflow writes on a resource it contains; undoing restores exactly these, nothing else.
INCIDENT_TAGS = (INCIDENT_TAG, STATUS_TAG)


class TaggableKind(StrEnum):
    """Each kind has its own tagging API; `TaggedResource.name` is what that API calls the resource."""

    EC2_INSTANCE = "ec2-instance"  # instance id
    IAM_USER = "iam-user"  # user name
    IAM_ROLE = "iam-role"  # role name
    S3_BUCKET = "s3-bucket"  # bucket name
    LAMBDA_FUNCTION = "lambda-function"  # function ARN
    RDS = "rds"  # DB instance or cluster ARN


class TaggedResource(BaseModel):
    kind: TaggableKind
    name: str
    label: str = Field(default="", description="how a person calls it (an RDS identifier rather than its ARN)")
    prior: dict[str, str] = Field(default_factory=dict, description="its tags before containment")

    @property
    def shown(self) -> str:
        return self.label or self.name


class TagRequest(BaseModel):
    """Mark (or unmark) every resource one containment changes: one, or an Aurora cluster and its members."""

    incident_id: str
    account_id: str
    region: str
    resources: list[TaggedResource]

    @property
    def wanted(self) -> dict[str, str]:
        return {INCIDENT_TAG: self.incident_id, STATUS_TAG: CONTAINED}


class _Target(Protocol):
    incident_id: str
    account_id: str
    region: str


class _Tagged(Protocol):
    def tagged_resources(self) -> list[TaggedResource]: ...


class _StepInput(Protocol):
    @property
    def target(self) -> _Target: ...

    @property
    def prior(self) -> _Tagged: ...


def tag_request_for(step: _StepInput) -> TagRequest:
    """The tag request of any playbook's containment input: where (its target) and what (its prior state)."""
    target = step.target
    return TagRequest(
        incident_id=target.incident_id,
        account_id=target.account_id,
        region=target.region,
        resources=step.prior.tagged_resources(),
    )
