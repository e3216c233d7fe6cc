"""S3 buckets: the configuration an incident saves as evidence and restores exactly on undo."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from irflow.models.tagging import TaggableKind, TaggedResource


class BucketTarget(BaseModel):
    incident_id: str
    account_id: str
    region: str
    bucket: str


class BucketContext(BaseModel):
    bucket: str
    location: str | None = None
    policy: str | None = Field(default=None, description="the bucket policy, exactly as S3 returned it")
    public_access_block: dict[str, bool] | None = None
    ownership: str | None = None
    acl: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    captured_at: datetime

    def tagged_resources(self) -> list[TaggedResource]:
        return [TaggedResource(kind=TaggableKind.S3_BUCKET, name=self.bucket, prior=self.tags)]


class BucketStepInput(BaseModel):
    target: BucketTarget
    prior: BucketContext
