"""Lambda functions: what an incident about a function knows before containment, and must restore."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from irflow.models.tagging import TaggableKind, TaggedResource


class LambdaTarget(BaseModel):
    incident_id: str
    account_id: str
    region: str
    function_name: str


class EventSourceMappingState(BaseModel):
    """A pull trigger (SQS, Kinesis, DynamoDB streams, Kafka, MQ...) as it was."""

    uuid: str
    event_source_arn: str | None = None
    function_arn: str | None = None
    state: str | None = Field(default=None, description="Enabled, Disabled, Creating, Updating...")


class LambdaContext(BaseModel):
    """The function as it was before containment. Environment variable *values* are not kept here
    (this travels in workflow history); the evidence object has the full configuration."""

    function_name: str
    function_arn: str
    role_arn: str
    role_name: str
    runtime: str | None = None
    handler: str | None = None
    package_type: str | None = None
    code_sha256: str | None = None
    code_size: int | None = None
    last_modified: str | None = None
    revision_id: str | None = None
    state: str | None = None
    vpc_id: str | None = None
    environment_variable_names: list[str] = Field(default_factory=list)
    reserved_concurrency: int | None = Field(
        default=None, description="the function's reserved concurrency; None when it had none"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    event_source_mappings: list[EventSourceMappingState] = Field(default_factory=list)
    policy_statement_ids: list[str] = Field(default_factory=list, description="Sids of the resource-based policy")
    function_url_auth_type: str | None = None
    role_shared_with: list[str] = Field(
        default_factory=list, description="other functions in the region running under the same execution role"
    )
    captured_at: datetime

    def tagged_resources(self) -> list[TaggedResource]:
        return [
            TaggedResource(
                kind=TaggableKind.LAMBDA_FUNCTION, name=self.function_arn, label=self.function_name, prior=self.tags
            )
        ]


class LambdaStepInput(BaseModel):
    target: LambdaTarget
    prior: LambdaContext
    issued_before: datetime | None = None
