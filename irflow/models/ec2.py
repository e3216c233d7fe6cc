"""What irflow knows about an EC2 instance: the enrichment that is also the prior state containment
must be able to restore exactly."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from irflow.models.tagging import TaggableKind, TaggedResource


class Ec2Target(BaseModel):
    """The instance an activity works on, and the incident it works for (tags, names, idempotency)."""

    incident_id: str
    account_id: str
    region: str
    instance_id: str


class NetworkInterfaceState(BaseModel):
    network_interface_id: str
    vpc_id: str
    subnet_id: str | None = None
    device_index: int = 0
    group_ids: list[str]
    private_ip: str | None = None
    public_ip: str | None = None


class VolumeAttachment(BaseModel):
    volume_id: str
    device_name: str
    delete_on_termination: bool = False
    size_gib: int | None = None
    encrypted: bool | None = None


class AutoScalingMembership(BaseModel):
    group_name: str
    min_size: int
    max_size: int
    desired_capacity: int
    protected_from_scale_in: bool = False


class TargetGroupRegistration(BaseModel):
    target_group_arn: str
    port: int | None = None
    availability_zone: str | None = None


class InstanceProfileState(BaseModel):
    association_id: str
    profile_arn: str
    profile_name: str
    role_names: list[str] = Field(default_factory=list)
    role_ids: list[str] = Field(default_factory=list)  # the same roles' ids: a session's `aws:userid` starts with one


class InstanceContext(BaseModel):
    """Everything detection & analysis learned about the instance, captured before any change."""

    instance_id: str
    account_id: str
    region: str
    state: str
    instance_type: str | None = None
    image_id: str | None = None
    platform: str | None = None
    launch_time: datetime | None = None
    availability_zone: str | None = None
    vpc_id: str | None = None
    network_interfaces: list[NetworkInterfaceState] = Field(default_factory=list)
    volumes: list[VolumeAttachment] = Field(default_factory=list)
    auto_scaling: AutoScalingMembership | None = None
    target_groups: list[TargetGroupRegistration] = Field(default_factory=list)
    instance_profile: InstanceProfileState | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    disable_api_termination: bool = False
    shutdown_behavior: str = "stop"
    enriched: bool = Field(
        default=True,
        description="False: only the first look (one DescribeInstances: state, interfaces, volumes, tags), enough "
        "to decide and isolate; Auto Scaling, target groups, profile and attributes are not read yet",
    )
    captured_at: datetime

    @property
    def vpc_ids(self) -> list[str]:
        return sorted({eni.vpc_id for eni in self.network_interfaces})

    def tagged_resources(self) -> list[TaggedResource]:
        return [TaggedResource(kind=TaggableKind.EC2_INSTANCE, name=self.instance_id, prior=self.tags)]


class Ec2StepInput(BaseModel):
    """Input of every EC2 containment step and of its undo: the undo restores `prior` exactly."""

    target: Ec2Target
    prior: InstanceContext
    issued_before: datetime | None = Field(
        default=None, description="sessions issued before this instant are revoked (fixed by the workflow)"
    )
