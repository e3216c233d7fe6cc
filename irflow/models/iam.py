"""IAM user credentials: what an incident about a user's access key knows, and must be able to restore."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from irflow.models.tagging import TaggableKind, TaggedResource

# The incident's deny-older-sessions inline policy is named this and the incident id (activities.iam), which is
# also how a CloudTrail record of its deletion is recognised (irflow.detection.tamper).
REVOCATION_POLICY_PREFIX = "irflow-revoke-sessions-"


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
    prior_recorded: bool = Field(
        default=False, description="read back from the record containment wrote before acting (a replay's look)"
    )
    captured_at: datetime

    def key(self, access_key_id: str | None) -> AccessKeyState | None:
        return next((k for k in self.access_keys if k.access_key_id == access_key_id), None)

    def tagged_resources(self) -> list[TaggedResource]:
        return [TaggedResource(kind=TaggableKind.IAM_USER, name=self.user_name, prior=self.tags)]


class IamUserStepInput(BaseModel):
    target: IamUserTarget
    prior: IamUserContext
    issued_before: datetime | None = None


class IamRoleTarget(BaseModel):
    """A role whose temporary credentials a finding says are misused."""

    incident_id: str
    account_id: str
    region: str
    role_name: str = Field(default="", description="may be empty: then found from the principal id's role id")
    principal_id: str | None = Field(default=None, description="'AROA…:session-name' for an assumed role")
    access_key_id: str | None = None
    source_instance_ids: list[str] = Field(
        default_factory=list, description="instances the finding says the credentials came from"
    )

    @property
    def session_name(self) -> str | None:
        if self.principal_id and ":" in self.principal_id:
            return self.principal_id.split(":", 1)[1]
        return None


class IamRoleContext(BaseModel):
    """The role as it was before containment, and who uses it."""

    role_name: str
    role_arn: str
    role_id: str
    path: str = "/"
    created: datetime | None = None
    max_session_duration: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    trust_policy: dict = Field(default_factory=dict)
    attached_policies: list[str] = Field(default_factory=list)
    inline_policies: list[str] = Field(default_factory=list)
    last_used: datetime | None = None
    last_used_region: str | None = None
    instance_profiles: list[str] = Field(default_factory=list, description="ARNs of profiles carrying the role")
    instances_using_role: list[str] = Field(default_factory=list, description="instances with one of those profiles")
    unmodifiable_reason: str | None = Field(
        default=None, description="why irflow may not change this role (service-linked, IAM Identity Center)"
    )
    captured_at: datetime

    def tagged_resources(self) -> list[TaggedResource]:
        return [TaggedResource(kind=TaggableKind.IAM_ROLE, name=self.role_name, prior=self.tags)]


class IamRoleStepInput(BaseModel):
    target: IamRoleTarget
    prior: IamRoleContext
    issued_before: datetime | None = None
