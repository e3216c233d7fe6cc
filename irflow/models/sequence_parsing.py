"""Attack sequences (GuardDuty Extended Threat Detection): the resources an `AttackSequence:*` finding names, each
as the playbooks expect a finding's resource. Pure: no I/O.

An attack sequence's finding names one resource of type "AttackSequence"; what the attack touched is in
`service.detection.sequence` (GuardDuty's `Sequence`): its `resources` are up to 400 `ResourceV2` (`uid`, `name`,
`accountId`, `region`, `cloudPartition`, `resourceType` such as EC2_INSTANCE, ACCESS_KEY or S3_BUCKET, `tags`, and
`data` with the kind's details: `ec2Instance`, `accessKey` {principalId, userName, userType}, `s3Bucket`...), beside
its actors, endpoints, signals and indicators. GetFindings spells the same in PascalCase; `models.finding` hands
this module the camelCase either way.

Every name is input from outside: each is checked against what AWS accepts for its kind (`irflow.models.identifiers`)
and left out when it fails, so a crafted value never becomes an incident key or reaches an API call. A resource in
an account that is not an account id, or in another partition, keeps only its kind: irflow does not guess where a
resource is. An instance's ARN gives its account and region when the sequence leaves them out; one that contradicts
them is refused, saying why (`AffectedResource.refused`). A malformed resource is left out, never the finding; at
most MAX_SEQUENCE_RESOURCES are kept (the finding travels in every workflow input), those a playbook may answer
first.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from irflow.models.finding import AffectedResource, Finding
from irflow.models.finding_shapes import GuardDutyModel, InstanceProfileRef, Tag
from irflow.models.identifiers import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    BUCKET_NAME,
    IAM_USER_NAME,
    INSTANCE_ID,
    PATTERNS,
    REGION,
)

MAX_SEQUENCE_RESOURCES = 50

# GuardDuty's ResourceV2 kinds, in the words its other findings (and so the router and the playbooks) use.
KINDS = {
    "EC2_INSTANCE": "Instance",
    "ACCESS_KEY": "AccessKey",
    "S3_BUCKET": "S3Bucket",
    "S3_OBJECT": "S3Object",
    "EKS_CLUSTER": "EKSCluster",
    "ECS_CLUSTER": "ECSCluster",
    "CONTAINER": "Container",
}
# Kinds a containment playbook may answer: kept first when a sequence names more than MAX_SEQUENCE_RESOURCES.
ANSWERABLE = ("Instance", "AccessKey", "S3Bucket", "S3Object")

_KIND = re.compile(r"[A-Z0-9_]{1,64}")
_PRINCIPAL_ID = re.compile(r"[A-Za-z0-9]{12,128}(?::[A-Za-z0-9_+=,.@-]{1,128})?")  # AIDA…, AROA…:session, account
_USER_TYPE = re.compile(r"[A-Za-z]{1,32}")
# Any other kind's id, shown in the parent's reasons: printable and short, no spaces, quotes or markup.
_OTHER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+=,-]{0,255}")
_PARTITION = re.compile(r"aws[a-z-]{0,30}")
_INSTANCE_ARN = re.compile(r"arn:(?P<partition>[^:]*):ec2:(?P<region>[^:]*):(?P<account>[^:]*):instance/(?P<id>[^:]*)")


class _Ec2InstanceData(GuardDutyModel):
    iam_instance_profile: InstanceProfileRef | None = None


class _AccessKeyData(GuardDutyModel):
    principal_id: str | None = None
    user_name: str | None = None
    user_type: str | None = None


class _ResourceData(GuardDutyModel):
    ec2_instance: _Ec2InstanceData | None = None
    access_key: _AccessKeyData | None = None


class _ResourceV2(GuardDutyModel):
    uid: str
    name: str | None = None
    account_id: str | None = None
    resource_type: str
    region: str | None = None
    cloud_partition: str | None = None
    tags: list[Tag] = []
    data: _ResourceData | None = None


def _valid(pattern: re.Pattern[str], value: str | None) -> str | None:
    return value if value is not None and pattern.fullmatch(value) else None


def _instance_id(candidates: list[str]) -> str | None:
    """An instance id, bare or at the end of an EC2 instance ARN (`arn:aws:ec2:<region>:<account>:instance/i-…`)."""
    for value in candidates:
        arn = _INSTANCE_ARN.fullmatch(value)
        tail = arn.group("id") if arn else value
        if PATTERNS[INSTANCE_ID].fullmatch(tail):
            return tail
    return None


def _arn_place(kind: str, resource: _ResourceV2, partition: str) -> tuple[str | None, str | None, str | None]:
    """(account, region, why not) of a resource, from what the sequence says and, for an instance, its ARN: what one
    leaves out the other gives; when they disagree (or the ARN is another partition's) irflow does not guess."""
    account, region = resource.account_id, _valid(PATTERNS[REGION], resource.region)
    arn = next((m for v in (resource.uid, resource.name) if v and (m := _INSTANCE_ARN.fullmatch(v))), None)
    if kind != "Instance" or arn is None:
        return account, region, None
    if arn.group("partition") != partition:
        shown = _valid(_PARTITION, arn.group("partition")) or "another partition"
        return None, None, f"its ARN is in {shown}, the sequence in {partition}: irflow does not act there"
    said = {"account": account, "region": region}
    in_arn = {
        "account": _valid(PATTERNS[ACCOUNT_ID], arn.group("account")),
        "region": _valid(PATTERNS[REGION], arn.group("region")),
    }
    for what, value in in_arn.items():
        if value and said[what] and value != said[what]:
            return None, None, f"its ARN says {what} {value}, the sequence {said[what]}: irflow does not guess"
    return account or in_arn["account"], region or in_arn["region"], None


def _bucket_name(candidates: list[str], partition: str) -> str | None:
    """A bucket's name: bare, in a bucket ARN, or before the first '/' of an object's (`arn:aws:s3:::bucket/key`)."""
    for value in candidates:
        bare = value.removeprefix(f"arn:{partition}:s3:::").split("/", 1)[0]
        if PATTERNS[BUCKET_NAME].fullmatch(bare):
            return bare
    return None


def _identified(kind: str, resource: _ResourceV2, partition: str) -> dict[str, Any]:
    """The fields that say which resource of its kind it is, each checked; empty when none is valid."""
    candidates = [v for v in (resource.uid, resource.name) if v]
    data = resource.data or _ResourceData()
    if kind == "Instance":
        instance_id = _instance_id(candidates)
        profile = data.ec2_instance.iam_instance_profile if data.ec2_instance else None
        arn = profile.arn if profile and profile.arn and profile.arn.startswith(f"arn:{partition}:iam::") else None
        found = {"resource_id": instance_id, "instance_id": instance_id, "instance_profile_arn": arn}
        return found if instance_id else {}
    if kind == "AccessKey":
        key = data.access_key or _AccessKeyData()
        key_id = next((v for v in candidates if PATTERNS[ACCESS_KEY_ID].fullmatch(v)), None)
        return {
            "resource_id": key_id,
            "access_key_id": key_id,
            "principal_id": _valid(_PRINCIPAL_ID, key.principal_id),
            "user_name": _valid(PATTERNS[IAM_USER_NAME], key.user_name),
            "user_type": _valid(_USER_TYPE, key.user_type),
        }
    if kind in ("S3Bucket", "S3Object"):
        # An object's name may be its key ("uploads/a.exe" would read as a bucket "uploads"): only its ARN says
        # which bucket it is in.
        arns = [v for v in candidates if v.startswith(f"arn:{partition}:s3:::")]
        bucket = _bucket_name(candidates[::-1] if kind == "S3Bucket" else arns, partition)  # a bucket: name first
        return {"resource_id": bucket, "bucket_names": (bucket,)} if bucket else {}
    return {"resource_id": next((v for v in reversed(candidates) if _OTHER_ID.fullmatch(v)), None)}


def _affected(resource: _ResourceV2, partition: str) -> AffectedResource | None:
    if not _KIND.fullmatch(resource.resource_type):
        return None
    kind = KINDS.get(resource.resource_type, resource.resource_type)
    account = resource.account_id
    elsewhere = (account is not None and not PATTERNS[ACCOUNT_ID].fullmatch(account)) or (
        resource.cloud_partition not in (None, partition)
    )
    if elsewhere:  # named where irflow cannot tell, or cannot act: only its kind is kept
        return AffectedResource(resource_type=kind)
    identified = _identified(kind, resource, partition)
    account, region, refused = _arn_place(kind, resource, partition)
    if refused:  # its kind, which one (when valid) and why: listed by the parent, never opened
        return AffectedResource(resource_type=kind, resource_id=identified.get("resource_id"), refused=refused)
    return AffectedResource(
        resource_type=kind,
        account_id=account,
        # "global" (IAM) or nothing: the finding's region, where any regional endpoint answers for it.
        region=region,
        tags={t.key: t.value or "" for t in resource.tags},
        **identified,
    )


def sequence_resources(detection: Any, partition: str = "aws") -> tuple[tuple[AffectedResource, ...], int]:
    """(the resources `service.detection` names, at most MAX_SEQUENCE_RESOURCES, answerable kinds first; how many
    it named). Nothing for a finding without a sequence, or one whose resources are not a list."""
    sequence = detection.get("sequence") if isinstance(detection, dict) else None
    named = sequence.get("resources") if isinstance(sequence, dict) else None
    if not isinstance(named, list):
        return (), 0
    kept: dict[str, AffectedResource] = {}
    for raw in named:
        try:
            resource = _affected(_ResourceV2.model_validate(raw), partition)
        except ValidationError:
            continue
        if resource is not None:
            kept.setdefault(resource.model_dump_json(), resource)  # the same resource named twice is one
    ordered = sorted(kept.values(), key=lambda r: r.resource_type not in ANSWERABLE)  # stable: the sequence's order
    return tuple(ordered[:MAX_SEQUENCE_RESOURCES]), len(named)


def resource_finding(sequence: Finding, resource: AffectedResource, parent: str) -> Finding:
    """The sequence as a finding about one resource it names, handed over by the incident `parent`: what that
    resource's own incident is handed, routed like any finding about it (`intake.router`: `sequence_parent` marks it
    as the sequence's, the only way it is marked), in the resource's own account and region where the sequence says."""
    return sequence.model_copy(
        update={
            "resource": resource,
            "account_id": resource.account_id or sequence.account_id,
            "region": resource.region or sequence.region,
            "sequence_resources": (),
            "sequence_resources_named": 0,
            "sequence_parent": parent,
        }
    )
