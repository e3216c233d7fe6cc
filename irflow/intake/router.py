"""Routing: which playbook answers a finding, and which incident it belongs to. Pure, no I/O.

The routing table works on the resource a finding names and on its type family (the part of a
GuardDuty type between ':' and '/'), never on a list of type names, so a type GuardDuty adds tomorrow
still routes. Whatever no containment playbook fits goes to the triage-only playbook: evidence, a
notification and an analyst, never silence.

An attack sequence (`AttackSequence:*`, its resource "AttackSequence") goes to the attack-sequence playbook, one
incident per sequence; each resource it names is routed on its own by the same table (`is_attack_sequence`,
`workflows.sequence_playbook`), as a finding of the sequence's type about that resource handed over by the
sequence's incident (`Finding.sequence_parent`): its kind decides, not the sequence's type family. Any other
`AttackSequence:*` finding about a resource (Security Hub's copy of a sequence, say) is triage, one incident per
finding: only the sequence's own incident sends a resource to containment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from irflow.models.finding import Finding, FindingRejected
from irflow.models.identifiers import INCIDENT_ID_MAX_LENGTH
from irflow.visibility import shown_resource_id

EC2_PLAYBOOK = "ec2-instance"
IAM_USER_PLAYBOOK = "iam-user-credentials"
IAM_ROLE_PLAYBOOK = "iam-role-sessions"
S3_PLAYBOOK = "s3-bucket"
LAMBDA_PLAYBOOK = "lambda-function"
RDS_PLAYBOOK = "rds-instance"
SEQUENCE_PLAYBOOK = "attack-sequence"
TRIAGE_PLAYBOOK = "triage-only"
ATTACK_SEQUENCE_PREFIX = "AttackSequence:"

ALL_PLAYBOOKS = (
    EC2_PLAYBOOK,
    IAM_USER_PLAYBOOK,
    IAM_ROLE_PLAYBOOK,
    S3_PLAYBOOK,
    LAMBDA_PLAYBOOK,
    RDS_PLAYBOOK,
    SEQUENCE_PLAYBOOK,
    TRIAGE_PLAYBOOK,
)
# Playbooks this version can run (all of them, now); a finding meant for another goes to triage, saying so.
AVAILABLE_PLAYBOOKS = frozenset(ALL_PLAYBOOKS)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A key leaves room for the "-<opened at>" `incident_id` adds (an incident id is a tag value: at most
# INCIDENT_ID_MAX_LENGTH). A longer key keeps its readable start and ends with "-" and this many hex digits of
# the SHA-256 of all it would have said, so two long keys that differ anywhere stay apart.
_KEY_MAX_LENGTH = INCIDENT_ID_MAX_LENGTH - len("-20261207T125819Z")
_KEY_HASH_LENGTH = 20
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}([0-9a-f]{9})?$")
_KEY_PREFIX = {
    EC2_PLAYBOOK: "ec2",
    IAM_USER_PLAYBOOK: "iam-user",
    IAM_ROLE_PLAYBOOK: "iam-role",
    S3_PLAYBOOK: "s3",
    LAMBDA_PLAYBOOK: "lambda",
    RDS_PLAYBOOK: "rds",
    SEQUENCE_PLAYBOOK: "sequence",
    TRIAGE_PLAYBOOK: "triage",
}
# Resource types (GuardDuty's words; ASFF's are mapped to them in models.asff) and type families that
# name a resource a playbook can contain.
_BY_RESOURCE_TYPE = {
    "Instance": EC2_PLAYBOOK,
    "EC2Instance": EC2_PLAYBOOK,
    "S3Bucket": S3_PLAYBOOK,
    "S3Object": S3_PLAYBOOK,
    "Lambda": LAMBDA_PLAYBOOK,
    "RDSDBInstance": RDS_PLAYBOOK,
    "RDSLimitlessDB": RDS_PLAYBOOK,
}
_BY_TYPE_FAMILY = {
    "EC2": EC2_PLAYBOOK,
    "Runtime": EC2_PLAYBOOK,  # runtime monitoring: an instance when it names one, else triage
    "S3": S3_PLAYBOOK,
    "Lambda": LAMBDA_PLAYBOOK,
    "RDS": RDS_PLAYBOOK,
}
_ROLE_USER_TYPES = {"AssumedRole", "Role"}


@dataclass(frozen=True)
class Route:
    playbook: str
    incident_key: str
    resource_id: str
    reason: str = ""
    personal: bool = False  # the resource id names a principal: shown only hashed (irflow.visibility)

    @property
    def shown_id(self) -> str:
        """The resource id as it may appear in clear: search attributes, summaries, logs, spans."""
        return shown_resource_id(self.resource_id, self.personal)


def type_family(finding_type: str) -> str:
    """'UnauthorizedAccess:IAMUser/ConsoleLogin' → 'IAMUser'."""
    after_colon = finding_type.split(":", 1)[1] if ":" in finding_type else finding_type
    return after_colon.split("/", 1)[0]


def is_attack_sequence(finding: Finding) -> bool:
    """The sequence itself, not one of the resources it names (a finding of its type about that resource)."""
    return finding.resource.resource_type == "AttackSequence"


def _unhanded_sequence(finding: Finding) -> bool:
    """Of an attack sequence's type, and not handed over by the sequence's incident: the sequence itself, or a copy
    of it about one resource (Security Hub's)."""
    return finding.type.startswith(ATTACK_SEQUENCE_PREFIX) and finding.sequence_parent is None


def _key(prefix: str, finding: Finding, resource_id: str, personal: bool = False) -> str:
    # Workflow ids are stored in clear text: only account, region, kind and the resource id go in, and
    # an identity (a user or role name may be a person's name) only as a hash.
    shown = shown_resource_id(resource_id, personal)
    whole = f"{prefix}-{finding.account_id}-{finding.region}-{shown}"
    key = _UNSAFE.sub("_", whole)
    if len(key) <= _KEY_MAX_LENGTH:
        return key
    # A long resource id (an ARN a Security Hub finding names, say): the key stays unique and its id valid.
    digest = hashlib.sha256(whole.encode()).hexdigest()[:_KEY_HASH_LENGTH]
    return f"{key[: _KEY_MAX_LENGTH - _KEY_HASH_LENGTH - 1]}-{digest}"


def _intended(finding: Finding) -> tuple[str, str]:
    """(playbook, why) from the table, before overrides and availability."""
    resource, family = finding.resource, type_family(finding.type)
    if is_attack_sequence(finding):
        return SEQUENCE_PLAYBOOK, "an attack sequence: an incident of its own, and one per resource it names"
    if _unhanded_sequence(finding):
        return TRIAGE_PLAYBOOK, (
            f"an attack sequence's finding about {resource.resource_type}, not handed over by the sequence's own "
            "incident: an analyst decides what to contain"
        )
    if finding.type.startswith(ATTACK_SEQUENCE_PREFIX):
        family = ""  # a resource the sequence names: its own kind decides, not the sequence's type family
    # S3 findings from management events name the caller's access key *and* the bucket: the bucket is
    # what the finding is about, so the type family decides before the resource type does.
    if family in ("IAMUser", "IAM") or (resource.resource_type == "AccessKey" and family not in _BY_TYPE_FAMILY):
        if resource.user_type == "Root":
            return TRIAGE_PLAYBOOK, "root credentials are never contained automatically: notify and wait"
        if resource.user_type == "AWSService":
            return TRIAGE_PLAYBOOK, "an AWS service acted: there is no session of ours to revoke"
        if resource.user_type == "FederatedUser":
            return TRIAGE_PLAYBOOK, "federation tokens are revoked on the IAM user that minted them: an analyst decides"
        if resource.user_type in _ROLE_USER_TYPES:
            return IAM_ROLE_PLAYBOOK, f"credentials of a {resource.user_type} session"
        if resource.user_name or resource.access_key_id:
            return IAM_USER_PLAYBOOK, "credentials of an IAM user"
        return TRIAGE_PLAYBOOK, "an IAM finding that names no user or key"
    playbook = _BY_TYPE_FAMILY.get(family) if resource.resource_type == "AccessKey" else None
    playbook = playbook or _BY_RESOURCE_TYPE.get(resource.resource_type) or _BY_TYPE_FAMILY.get(family)
    if playbook == EC2_PLAYBOOK:
        if resource.instance_id and _INSTANCE_ID.match(resource.instance_id):
            return EC2_PLAYBOOK, "an EC2 instance"
        named = f"names {resource.instance_id!r}, not an instance id" if resource.instance_id else "names no instance"
        return TRIAGE_PLAYBOOK, f"{resource.resource_type} finding that {named}"
    if playbook == S3_PLAYBOOK and not resource.bucket_names:
        return TRIAGE_PLAYBOOK, f"{family} finding about {resource.resource_type} that names no bucket"
    if playbook:
        return playbook, f"resource type {resource.resource_type}"
    return TRIAGE_PLAYBOOK, f"no containment playbook for {resource.resource_type}" + (f" ({family})" if family else "")


def _subject(playbook: str, resource) -> str | None:
    """What one incident is about, for a playbook: the instance, the user or role, the bucket..."""
    return {
        EC2_PLAYBOOK: resource.instance_id,
        IAM_USER_PLAYBOOK: resource.user_name or resource.access_key_id,
        IAM_ROLE_PLAYBOOK: resource.user_name or resource.principal_id,
        S3_PLAYBOOK: resource.bucket_names[0] if resource.bucket_names else None,
        LAMBDA_PLAYBOOK: _function_name(resource.resource_id),
        RDS_PLAYBOOK: _db_identifier(resource.resource_id),
    }.get(playbook, resource.resource_id)


def _function_name(resource_id: str | None) -> str | None:
    """GuardDuty names the function, Security Hub gives its ARN (maybe qualified): one function, one incident."""
    if resource_id and resource_id.startswith("arn:") and ":function:" in resource_id:
        return resource_id.split(":function:", 1)[1].split(":", 1)[0]
    return resource_id


def _db_identifier(resource_id: str | None) -> str | None:
    """GuardDuty names the DB instance, Security Hub gives its ARN: one database, one incident."""
    if resource_id and resource_id.startswith("arn:") and ":db:" in resource_id:
        return resource_id.split(":db:", 1)[1]
    return resource_id


def route(
    finding: Finding, overrides: Mapping[str, str] | None = None, opened_by: tuple[str, str] | None = None
) -> Route:
    """Map a finding to its playbook and deterministic incident key.

    `overrides` maps finding-type patterns (shell globs, e.g. "Recon:EC2/*") to a playbook; the first
    matching pattern wins over the table. `opened_by` = (playbook, why) is another incident asking for
    this one (a role incident opening the incident of the instance its credentials came from).
    Raises `FindingRejected` only for a misconfigured override.
    """
    playbook, reason = opened_by or _intended(finding)
    intended = playbook
    for pattern, chosen in ({} if opened_by else overrides or {}).items():
        if fnmatchcase(finding.type, pattern):
            if chosen not in ALL_PLAYBOOKS:
                raise FindingRejected("invalid_override", f"playbook override {pattern!r} names unknown {chosen!r}")
            playbook, reason = chosen, f"IRFLOW_PLAYBOOK_OVERRIDES matches {pattern!r}"
            break
    if playbook not in AVAILABLE_PLAYBOOKS:
        playbook, reason = TRIAGE_PLAYBOOK, f"{reason}; the {playbook} playbook is not in this version: triage"
    resource = finding.resource
    if playbook == EC2_PLAYBOOK and not (resource.instance_id and _INSTANCE_ID.match(resource.instance_id)):
        playbook, reason = TRIAGE_PLAYBOOK, f"{reason}; no instance id to contain: triage"
    if playbook == S3_PLAYBOOK and not resource.bucket_names:
        playbook, reason = TRIAGE_PLAYBOOK, f"{reason}; no bucket to contain: triage"
    if playbook == LAMBDA_PLAYBOOK and not (resource.resource_type == "Lambda" and resource.resource_id):
        playbook, reason = TRIAGE_PLAYBOOK, f"{reason}; no Lambda function to contain: triage"
    # A Limitless Database (a shard group) is not a DB instance: triage until a playbook knows shard groups.
    if playbook == RDS_PLAYBOOK and not (resource.resource_type == "RDSDBInstance" and resource.resource_id):
        playbook, reason = TRIAGE_PLAYBOOK, f"{reason}; no DB instance to contain: triage"
    # Identities (user or role names, keys) appear in keys only hashed: they may name a person.
    personal_intent = intended in (IAM_USER_PLAYBOOK, IAM_ROLE_PLAYBOOK)
    if playbook == TRIAGE_PLAYBOOK:
        # One triage incident per subject (the intended playbook's: a role's sessions, whatever their
        # keys, are one incident); attack sequences (but the resources their incident hands over) and findings
        # naming nothing are incidents alone.
        subject = None if is_attack_sequence(finding) or _unhanded_sequence(finding) else _subject(intended, resource)
        kind = _UNSAFE.sub("_", resource.resource_type.lower())
        resource_id = subject or f"finding-{finding.id[-40:]}"
        personal = bool(subject) and (
            personal_intent or resource.resource_type in ("AccessKey", "IAMUser", "IAMRole") or bool(resource.user_name)
        )
        key = _key(f"triage-{kind}", finding, resource_id, personal)
        return Route(playbook, key, resource_id, reason, personal)
    resource_id = _subject(playbook, resource) or f"finding-{finding.id[-40:]}"
    personal = playbook in (IAM_USER_PLAYBOOK, IAM_ROLE_PLAYBOOK)
    return Route(playbook, _key(_KEY_PREFIX[playbook], finding, resource_id, personal), resource_id, reason, personal)


def incident_id(incident_key: str, opened_at: datetime) -> str:
    """One resource may have several incidents over time (one at a time): the id adds when it opened."""
    opened_at = opened_at.replace(tzinfo=UTC) if opened_at.tzinfo is None else opened_at.astimezone(UTC)
    return f"{incident_key}-{opened_at:%Y%m%dT%H%M%SZ}"
