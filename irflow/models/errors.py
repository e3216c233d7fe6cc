"""Names of the typed failures shared by activities (which raise them) and workflows (which read them)."""

NOT_FOUND = "ResourceNotFound"
ACCESS_DENIED = "AccessDenied"
INVALID_REQUEST = "InvalidRequest"
NOT_CONFIGURED = "NotConfigured"
NON_RETRYABLE_TYPES = [NOT_FOUND, ACCESS_DENIED, INVALID_REQUEST, NOT_CONFIGURED]
