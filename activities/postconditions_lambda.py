"""Postcondition checks of the Lambda playbook's steps, each taking the step's own argument (LambdaStepInput).

A function or execution role deleted since containment is gone, not drift: a deleted function runs nothing,
and a deleted role's sessions are worthless.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, client, typed_aws_errors
from activities.evidence import checked_identifier
from activities.lambda_function import lambda_client, reserved_concurrency
from activities.postconditions_common import Verdict, check_read_only, check_role_revocation, is_gone
from irflow.models.identifiers import IAM_ROLE_NAME
from irflow.models.lambda_function import LambdaStepInput
from irflow.models.postconditions import Postcondition


@aws_activity(*check_read_only(("lambda:GetFunctionConcurrency",)))
def check_throttle_function(step: LambdaStepInput) -> Postcondition:
    """The function's reserved concurrency is 0: every invocation is throttled."""
    verdict = Verdict("throttle_function")
    name = step.prior.function_name
    try:
        with typed_aws_errors(f"read the concurrency of Lambda function {name}"):
            reserved = reserved_concurrency(lambda_client(step.target), name)
    except ApplicationError as error:
        if not is_gone(error):
            raise
        verdict.vanished(f"Lambda function {name} no longer exists: it runs nothing", name)
        return verdict.result()
    if reserved is None:
        verdict.drifted(f"Lambda function {name} has no reserved concurrency: it runs unthrottled", name)
    elif reserved != 0:
        verdict.drifted(f"Lambda function {name} has reserved concurrency {reserved}, not 0: it runs", name)
    return verdict.result()


@aws_activity(*check_read_only(("iam:GetRolePolicy", "iam:GetRole")))
def check_revoke_function_role_sessions(step: LambdaStepInput) -> Postcondition:
    """The execution role carries the incident's deny-older-sessions policy, unchanged."""
    verdict = Verdict("revoke_function_role_sessions")
    role = checked_identifier(IAM_ROLE_NAME, step.prior.role_name)
    iam = client("iam", step.target.region, step.target.account_id)
    check_role_revocation(verdict, iam, role, step.target.incident_id, step.issued_before, f"execution role {role}")
    return verdict.result()
