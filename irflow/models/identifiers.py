"""The identifiers irflow builds into shell text, S3 keys, IAM documents and AWS calls, checked strictly.

A finding is input from outside: a bucket or user name in it may carry `;`, `$(...)`, `/../` or a quote. Every
value that reaches an SSM command, an evidence key or a policy document is checked here first, against what
AWS itself accepts for that kind of name, so a crafted value is refused (non-retryably, by the activity) before
any call is made. Pure: no I/O, no Temporal.

`refusal(kind, value)` is None for a valid value, else one sentence saying what is wrong; `check(kind, value)`
returns the value or raises `InvalidIdentifier` (a ValueError) with that sentence.
"""

from __future__ import annotations

import re

# An incident id is what irflow.intake.router makes: its key (`_UNSAFE` leaves only [A-Za-z0-9._-]) plus
# "-<opened at, %Y%m%dT%H%M%SZ>". Every key starts with its playbook's prefix ("ec2-", "s3-", "triage-"...),
# so an id starts with a letter or digit, never with "-" (an option to a command) or "." (a path step). The
# id is written as the `irflow:incident-id` tag value on resources, and AWS tag values hold at most 256
# characters: a longer id could never be tagged.
INCIDENT_ID_MAX_LENGTH = 256

INCIDENT_ID = "incident id"
INSTANCE_ID = "instance id"
IAM_USER_NAME = "IAM user name"
IAM_ROLE_NAME = "IAM role name"
ACCESS_KEY_ID = "access key id"
BUCKET_NAME = "bucket name"
LAMBDA_FUNCTION_NAME = "Lambda function name"
DB_IDENTIFIER = "DB identifier"
ACCOUNT_ID = "account id"
REGION = "region"
KEY_SEGMENT = "S3 key segment"
MEMORY_UPLOADER = "memory uploader"
MEMORY_PREFIX = "memory image prefix"

# The fragments several kinds are made of.
_INCIDENT_ID = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{INCIDENT_ID_MAX_LENGTH - 1}}}"
_INSTANCE_ID = r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?"
_IAM_NAME = r"[A-Za-z0-9_+=,.@-]{1,64}"  # IAM's [\w+=,.@-]{1,64}, \w read as ASCII (IAM accepts no other)
_IAM_UNIQUE_ID = r"[A-Z0-9]{16,128}"  # an access key's id, a role's id (AKIA…, AROA…)
# Who uploads a memory image: the instance's role session, as IAM's `aws:userid` names it (`<role id>:<instance id>`).
_MEMORY_UPLOADER = rf"{_IAM_UNIQUE_ID}:{_INSTANCE_ID}"

PATTERNS: dict[str, re.Pattern[str]] = {
    INCIDENT_ID: re.compile(_INCIDENT_ID),
    INSTANCE_ID: re.compile(_INSTANCE_ID),
    IAM_USER_NAME: re.compile(_IAM_NAME),
    IAM_ROLE_NAME: re.compile(_IAM_NAME),
    ACCESS_KEY_ID: re.compile(_IAM_UNIQUE_ID),
    # What S3 has ever accepted (legacy us-east-1 names allowed capitals and underscores, up to 255).
    BUCKET_NAME: re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]"),
    LAMBDA_FUNCTION_NAME: re.compile(r"[A-Za-z0-9_-]{1,64}"),
    DB_IDENTIFIER: re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){0,62}(?<!-)"),
    ACCOUNT_ID: re.compile(r"[0-9]{12}"),
    REGION: re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"),
    # One step of an evidence key below the incident's prefix: a name (IAM names are the widest), never "." or "..".
    KEY_SEGMENT: re.compile(r"(?!\.{1,2}$)[A-Za-z0-9_+=,.@-]{1,255}"),
    # The quarantine profile may write only below `incidents/*/memory/${aws:userid}/` (irflow.iam_policy).
    MEMORY_UPLOADER: re.compile(_MEMORY_UPLOADER),
    MEMORY_PREFIX: re.compile(rf"incidents/{_INCIDENT_ID}/memory/{_MEMORY_UPLOADER}/"),
}

# The same checks in the dialect SSM's `allowedPattern` and similar validators take (these have no look-arounds).
SSM_BUCKET_PATTERN = f"^{PATTERNS[BUCKET_NAME].pattern}$"
SSM_PREFIX_PATTERN = f"^{PATTERNS[MEMORY_PREFIX].pattern}$"


class InvalidIdentifier(ValueError):
    """A value that is not a valid identifier of its kind."""


def refusal(kind: str, value: object) -> str | None:
    """None when `value` is a valid `kind` (one of PATTERNS), else why it is refused, in one sentence."""
    pattern = PATTERNS[kind]
    if not isinstance(value, str):
        return f"the {kind} must be text, not {type(value).__name__}"
    if pattern.fullmatch(value):
        return None
    shown = value if len(value) <= 80 else value[:77] + "..."
    return f"{shown!r} is not a valid {kind} (it must match {pattern.pattern})"


def check(kind: str, value: str) -> str:
    """`value` when it is a valid `kind`; otherwise InvalidIdentifier."""
    reason = refusal(kind, value)
    if reason:
        raise InvalidIdentifier(reason)
    return value


def incident_id_refusal(incident_id: str) -> str | None:
    """None for an incident id irflow could have made (see INCIDENT_ID above), else why it is refused. Called
    before anything runs for an incident: its id goes into S3 keys, tags, policy names and SSM comments."""
    return refusal(INCIDENT_ID, incident_id)


def key_refusal(relative_key: str) -> str | None:
    """None when `relative_key` (an evidence key below the incident's prefix) is made of valid segments."""
    if not isinstance(relative_key, str) or not relative_key:
        return "an evidence key must be non-empty text"
    for segment in relative_key.split("/"):
        reason = refusal(KEY_SEGMENT, segment)
        if reason:
            return f"evidence key {relative_key[:120]!r}: {reason}"
    return None


def region_of_arn(arn: str) -> str | None:
    """The region an ARN names (`arn:<partition>:<service>:<region>:…`); None for a bare id, an alias, or an ARN
    of a global resource: the caller's default region then."""
    parts = arn.split(":")
    return (parts[3] or None) if parts[0] == "arn" and len(parts) > 3 else None
