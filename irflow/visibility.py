"""What irflow shows where nothing is encrypted: workflow ids, search attributes, the static summary and
details, the UI's current details, log lines and span attributes. Resource ids (instances, buckets,
functions, databases, ARNs of resources) appear as they are; identities never do.

An identity is anything that names a principal: an IAM user or role name, a role session's principal id, an
access key id (a credential's id: GuardDuty shows it, and it leads to the user). It is shown only as
`identity_hash`, the hash the router also builds into incident keys, so the same identity always shows the
same way and can be searched for (`irflow list --resource NAME` hashes NAME before it asks Temporal).
A finding's remote IP addresses, user agents and command lines are never shown at all: they stay in the
finding, which travels only in payloads (sealed by `irflow.codec` when it is on) and in the evidence bucket.

Pure: no I/O, no Temporal; the workflow calls it too.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irflow.models.finding import Finding


def identity_hash(value: str) -> str:
    """An identity as it may be shown in clear: "h" and the first 20 hex digits of its SHA-256."""
    return f"h{hashlib.sha256(value.encode()).hexdigest()[:20]}"


def shown_resource_id(resource_id: str, personal: bool) -> str:
    """The resource id as irflow shows it in clear: hashed when it names a principal (`personal`)."""
    return identity_hash(resource_id) if personal and resource_id else resource_id


def identities(*findings: Finding) -> set[str]:
    """Every identity the findings name (user, principal id, access key)."""
    return {
        value
        for finding in findings
        for value in (finding.resource.user_name, finding.resource.access_key_id, finding.resource.principal_id)
        if value
    }


def redacted(text: str, *findings: Finding, resource: tuple[str, str] = ("", "")) -> str:
    """`text` with each identity the findings name replaced by its hash, each remote IP by "[remote ip]", and
    `resource` = (resource id, as it is shown: `shown_resource_id`) the way the router decided, in one pass."""
    replacements = {value: identity_hash(value) for value in identities(*findings)}
    resource_id, shown = resource
    if resource_id and shown != resource_id:
        replacements[resource_id] = shown
    replacements |= {f.remote_ip: "[remote ip]" for f in findings if f.remote_ip}
    if not text or not replacements:
        return text
    pattern = re.compile("|".join(re.escape(v) for v in sorted(replacements, key=len, reverse=True)))
    return pattern.sub(lambda match: replacements[match.group(0)], text)
