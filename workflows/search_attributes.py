"""Custom search attributes that let analysts filter incidents in the Temporal UI and the CLI."""

from temporalio.common import SearchAttributeKey

STATUS = SearchAttributeKey.for_keyword("IrflowStatus")
PHASE = SearchAttributeKey.for_keyword("IrflowPhase")
SEVERITY = SearchAttributeKey.for_keyword("IrflowSeverity")
FINDING_TYPE = SearchAttributeKey.for_keyword("IrflowFindingType")
RESOURCE_ID = SearchAttributeKey.for_keyword("IrflowResourceId")
RESOURCE_TYPE = SearchAttributeKey.for_keyword("IrflowResourceType")
ACCOUNT = SearchAttributeKey.for_keyword("IrflowAccount")

ALL = (STATUS, PHASE, SEVERITY, FINDING_TYPE, RESOURCE_ID, RESOURCE_TYPE, ACCOUNT)
