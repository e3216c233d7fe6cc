"""The worker's own policy for an incident: who may decide, what is protected, how much may be contained
unasked. Read from the worker's configuration when the incident starts, never from the workflow's input:
a client that may start workflows must not be able to name itself the approver.

A local activity, so the policy the incident runs under is recorded in its history (a marker): a replay
decides the same way, and an audit reads what applied.
"""

from __future__ import annotations

from temporalio import activity

from activities.aws import own_identity
from irflow.models.incident import PolicyRequest, ResponsePolicy
from irflow.models.settings import IrflowSettings
from irflow.own_principals import own_principal_patterns


class WorkerPolicy:
    """Bound to the settings the worker was built with (`worker.build_worker`)."""

    def __init__(self, settings: IrflowSettings) -> None:
        self.settings = settings

    @activity.defn(name="load_response_policy")
    def load_response_policy(self, request: PolicyRequest) -> ResponsePolicy:
        policy = self.settings.response_policy()
        own = own_principal_patterns(self.settings, own_identity()["Arn"])
        return policy.model_copy(update={"own_principals": own})
