"""Custom search attributes that let analysts filter incidents in the Temporal UI and the CLI, and the one
place their values are computed: at start (the listener) and as the incident moves (the workflow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from irflow.models.incident import incident_hash

if TYPE_CHECKING:
    from irflow.models.finding import Finding

STATUS = SearchAttributeKey.for_keyword("IrflowStatus")
PHASE = SearchAttributeKey.for_keyword("IrflowPhase")
SEVERITY = SearchAttributeKey.for_keyword("IrflowSeverity")
FINDING_TYPE = SearchAttributeKey.for_keyword("IrflowFindingType")
RESOURCE_ID = SearchAttributeKey.for_keyword("IrflowResourceId")
RESOURCE_TYPE = SearchAttributeKey.for_keyword("IrflowResourceType")
ACCOUNT = SearchAttributeKey.for_keyword("IrflowAccount")
# The SHA-256 of the incident id: a short id (its first characters) is found with one STARTS_WITH query.
INCIDENT_HASH = SearchAttributeKey.for_keyword("IrflowIncidentHash")

# What a contained incident guards (irflow.models.guarded): a CloudTrail record of a change to one of these, by
# someone other than irflow, joins every running incident that lists it. Empty until containment is done.
GUARDED = SearchAttributeKey.for_keyword_list("IrflowGuarded")

ALL = (STATUS, PHASE, SEVERITY, FINDING_TYPE, RESOURCE_ID, RESOURCE_TYPE, ACCOUNT, INCIDENT_HASH, GUARDED)


def incident_attributes(
    *,
    incident_id: str,
    finding: Finding,
    resource_id: str,
    status: str,
    phase: str,
    severity: str,
    guarded: Sequence[str] = (),
) -> TypedSearchAttributes:
    """Everything an incident is found by: what is fixed when it opens (its hash, the finding that opened it,
    the resource as the router named it) and what moves (status, phase, the severity over every finding).

    Search attributes are never encrypted: `resource_id` is the resource as irflow shows it in clear, an
    identity only as its hash (`irflow.visibility`); the finding gives only its type, resource type and account.
    `guarded`: what the incident guards once contained (`irflow.models.guarded`), identities hashed too."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(INCIDENT_HASH, incident_hash(incident_id)),
            SearchAttributePair(STATUS, status),
            SearchAttributePair(PHASE, phase),
            SearchAttributePair(SEVERITY, severity),
            SearchAttributePair(FINDING_TYPE, finding.type),
            SearchAttributePair(RESOURCE_ID, resource_id),
            SearchAttributePair(RESOURCE_TYPE, finding.resource.resource_type),
            SearchAttributePair(ACCOUNT, finding.account_id),
            SearchAttributePair(GUARDED, list(guarded)),
        ]
    )


def as_updates(attributes: TypedSearchAttributes) -> list[SearchAttributeUpdate]:
    """The same values as upserts, for `workflow.upsert_search_attributes`."""
    return [pair.key.value_set(pair.value) for pair in attributes]
