"""Custom search attributes that let analysts filter incidents in the Temporal UI and the CLI, and the one
place their values are computed: at start (the listener) and as the incident moves (the workflow)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

STATUS = SearchAttributeKey.for_keyword("IrflowStatus")
PHASE = SearchAttributeKey.for_keyword("IrflowPhase")
SEVERITY = SearchAttributeKey.for_keyword("IrflowSeverity")
FINDING_TYPE = SearchAttributeKey.for_keyword("IrflowFindingType")
RESOURCE_ID = SearchAttributeKey.for_keyword("IrflowResourceId")
RESOURCE_TYPE = SearchAttributeKey.for_keyword("IrflowResourceType")
ACCOUNT = SearchAttributeKey.for_keyword("IrflowAccount")
# The SHA-256 of the incident id: a short id (its first characters) is found with one STARTS_WITH query.
INCIDENT_HASH = SearchAttributeKey.for_keyword("IrflowIncidentHash")

ALL = (STATUS, PHASE, SEVERITY, FINDING_TYPE, RESOURCE_ID, RESOURCE_TYPE, ACCOUNT, INCIDENT_HASH)


def incident_attributes(
    *,
    incident_hash: str,
    status: str,
    phase: str,
    severity: str,
    finding_type: str,
    resource_id: str,
    resource_type: str,
    account: str,
) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(INCIDENT_HASH, incident_hash),
            SearchAttributePair(STATUS, status),
            SearchAttributePair(PHASE, phase),
            SearchAttributePair(SEVERITY, severity),
            SearchAttributePair(FINDING_TYPE, finding_type),
            SearchAttributePair(RESOURCE_ID, resource_id),
            SearchAttributePair(RESOURCE_TYPE, resource_type),
            SearchAttributePair(ACCOUNT, account),
        ]
    )


def as_updates(attributes: TypedSearchAttributes) -> list[SearchAttributeUpdate]:
    """The same values as upserts, for `workflow.upsert_search_attributes`."""
    return [pair.key.value_set(pair.value) for pair in attributes]
