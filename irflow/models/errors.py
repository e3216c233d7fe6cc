"""Names of the typed failures shared by activities (which raise them) and workflows (which read them)."""

NOT_FOUND = "ResourceNotFound"
ACCESS_DENIED = "AccessDenied"
INVALID_REQUEST = "InvalidRequest"
NOT_CONFIGURED = "NotConfigured"
NON_RETRYABLE_TYPES = [NOT_FOUND, ACCESS_DENIED, INVALID_REQUEST, NOT_CONFIGURED]
# Evidence that does not match its own checksum or digest: retried when the bytes may have been altered in flight,
# final when what is stored (or what AWS reports) is wrong.
EVIDENCE_INTEGRITY = "EvidenceIntegrity"
