"""The worker's own policy for an incident: who may decide, what is protected, how much may be contained
unasked. Read from the worker's configuration when the incident starts, never from the workflow's input:
a client that may start workflows must not be able to name itself the approver.

A local activity, so the policy the incident runs under is recorded in its history (a marker): a replay
decides the same way, and an audit reads what applied.
"""

from __future__ import annotations

import threading

from temporalio import activity

from activities.aws import _make
from irflow.models.incident import PolicyRequest, ResponsePolicy
from irflow.models.settings import IrflowSettings
from irflow.own_principals import own_principal_patterns


class WorkerPolicy:
    """Bound to the settings the worker was built with (`worker.build_worker`)."""

    def __init__(self, settings: IrflowSettings) -> None:
        self.settings = settings
        self._identity: list[str] = []
        self._lock = threading.Lock()

    def own_identity(self) -> str:
        """The worker's own principal (sts:GetCallerIdentity, needs no permission), asked once."""
        with self._lock:
            if not self._identity:
                self._identity.append(_make("sts", None).get_caller_identity()["Arn"])
            return self._identity[0]

    @activity.defn(name="load_response_policy")
    def load_response_policy(self, request: PolicyRequest) -> ResponsePolicy:
        policy = self.settings.response_policy()
        own = own_principal_patterns(self.settings, self.own_identity())
        return policy.model_copy(update={"own_principals": own})
