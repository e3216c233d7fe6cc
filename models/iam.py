"""IAM user credentials: what an incident about a user's access key knows, and must be able to restore."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class IamUserTarget(BaseModel):
    incident_id: str
    account_id: str
    region: str
    user_name: str = Field(default="", description="may be empty when the finding only names the access key")
    access_key_id: str | None = None


class AccessKeyState(BaseModel):
    access_key_id: str
    status: str
    created: datetime | None = None
    last_used: datetime | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None


class IamUserContext(BaseModel):
    """The user as it was before containment (and the evidence of who it is)."""

    user_name: str
    user_arn: str
    user_id: str
    created: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    access_keys: list[AccessKeyState] = Field(default_factory=list)
    has_login_profile: bool = False
    mfa_devices: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    attached_policies: list[str] = Field(default_factory=list)
    inline_policies: list[str] = Field(default_factory=list)
    captured_at: datetime

    def key(self, access_key_id: str | None) -> AccessKeyState | None:
        return next((k for k in self.access_keys if k.access_key_id == access_key_id), None)


class IamUserStepInput(BaseModel):
    target: IamUserTarget
    prior: IamUserContext
    issued_before: datetime | None = None
