"""Lambda functions: what the function is before anything changes, and its containment: throttle to zero,
cut the execution role's live sessions. Also the reads of a function that evidence (`lambda_evidence`) and
eradication (`lambda_triggers`) share: the function, its aliases, mappings and resource policies.

Each containment step looks at the current state before acting and has an exact undo. The function is
never deleted, and its code is never changed: what ran is the evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import (
    INVALID_REQUEST,
    NOT_FOUND,
    aws_activity,
    client,
    error_code,
    typed_aws_errors,
    without_metadata,
)
from activities.iam import (
    ROLE_REVOCATION_ACTIONS,
    ROLE_REVOCATION_UNDO_ACTIONS,
    delete_role_revocation,
    put_role_revocation,
    revocation_cutoff,
    revocation_policy_name,
)
from irflow.models.incident import StepResult
from irflow.models.lambda_function import EventSourceMappingState, LambdaContext, LambdaStepInput, LambdaTarget


def lambda_client(target: LambdaTarget):
    return client("lambda", target.region, target.account_id)


def _iam(target: LambdaTarget):
    return client("iam", target.region, target.account_id)


def role_name_from_arn(role_arn: str) -> str:
    """arn:aws:iam::123456789012:role/service-role/name → name (RoleName never includes the path)."""
    return role_arn.rsplit("/", 1)[-1]


def unqualified_arn(function_arn: str) -> str:
    """arn:aws:lambda:region:account:function:name[:qualifier] → without the qualifier."""
    return ":".join(function_arn.split(":")[:7])


def absent_is_none(call: Callable[[], Any]) -> Any:
    """The response, or None when Lambda says the thing asked about (a policy, a URL) does not exist.
    Only meaningful after GetFunction has shown the function itself exists."""
    try:
        return call()
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise


def get_function(target: LambdaTarget) -> dict[str, Any]:
    if not target.function_name:
        raise ApplicationError("the finding names no Lambda function", type=INVALID_REQUEST, non_retryable=True)
    with typed_aws_errors(f"describe Lambda function {target.function_name}"):
        response = lambda_client(target).get_function(FunctionName=target.function_name)
    return without_metadata(response)


def reserved_concurrency(lam, name: str) -> int | None:
    return lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")


def function_tags(lam, function_arn: str) -> dict[str, str]:
    return dict(lam.list_tags(Resource=unqualified_arn(function_arn)).get("Tags") or {})


def list_aliases(lam, name: str) -> list[dict[str, Any]]:
    return [a for page in lam.get_paginator("list_aliases").paginate(FunctionName=name) for a in page["Aliases"]]


def event_source_mappings(lam, name: str, alias_arns: list[str]) -> list[dict[str, Any]]:
    """Mappings of the function and of each alias (a mapping may name an alias), once each."""
    found: dict[str, dict[str, Any]] = {}
    for function in (name, *alias_arns):
        for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=function):
            for mapping in page["EventSourceMappings"]:
                found.setdefault(mapping["UUID"], mapping)
    return [found[uuid] for uuid in sorted(found)]


def resource_policy(lam, name: str, qualifier: str | None = None) -> dict[str, Any] | None:
    """The resource-based policy of the function (or of one alias), parsed; None when there is none."""
    arguments = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
    response = absent_is_none(lambda: lam.get_policy(**arguments))
    if response is None:
        return None
    policy = response["Policy"]
    return json.loads(policy) if isinstance(policy, str) else policy


def policy_statements(policy: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def qualifiers(aliases: list[dict[str, Any]]) -> list[str | None]:
    """The function itself (no qualifier) and each alias: every alias has its own resource policy."""
    return [None, *sorted(a["Name"] for a in aliases)]


def _functions_with_role(lam, role_arn: str, except_name: str) -> list[str]:
    return sorted(
        f["FunctionName"]
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if f.get("Role") == role_arn and f["FunctionName"] != except_name
    )


def _mapping_state(mapping: dict[str, Any]) -> EventSourceMappingState:
    return EventSourceMappingState(
        uuid=mapping["UUID"],
        event_source_arn=mapping.get("EventSourceArn"),
        function_arn=mapping.get("FunctionArn"),
        state=mapping.get("State"),
    )


@aws_activity(
    "lambda:GetFunction",
    "lambda:GetFunctionConcurrency",
    "lambda:ListTags",
    "lambda:ListAliases",
    "lambda:ListEventSourceMappings",
    "lambda:GetPolicy",
    "lambda:GetFunctionUrlConfig",
    "lambda:ListFunctions",
)
def describe_lambda_context(target: LambdaTarget) -> LambdaContext:
    """The function, its concurrency, tags, triggers and execution role, before anything changes."""
    function = get_function(target)
    config = function["Configuration"]
    name, arn = config["FunctionName"], unqualified_arn(config["FunctionArn"])
    lam = lambda_client(target)
    with typed_aws_errors(f"describe Lambda function {name}"):
        aliases = list_aliases(lam, name)
        mappings = event_source_mappings(lam, name, [a["AliasArn"] for a in aliases])
        url = absent_is_none(lambda: lam.get_function_url_config(FunctionName=name))
        return LambdaContext(
            function_name=name,
            function_arn=arn,
            role_arn=config["Role"],
            role_name=role_name_from_arn(config["Role"]),
            runtime=config.get("Runtime"),
            handler=config.get("Handler"),
            package_type=config.get("PackageType"),
            code_sha256=config.get("CodeSha256"),
            code_size=config.get("CodeSize"),
            last_modified=config.get("LastModified"),
            revision_id=config.get("RevisionId"),
            state=config.get("State"),
            vpc_id=(config.get("VpcConfig") or {}).get("VpcId") or None,
            environment_variable_names=sorted(((config.get("Environment") or {}).get("Variables") or {}).keys()),
            reserved_concurrency=reserved_concurrency(lam, name),
            tags=function_tags(lam, arn),
            aliases=sorted(a["Name"] for a in aliases),
            event_source_mappings=[_mapping_state(m) for m in mappings],
            policy_statement_ids=[s.get("Sid", "") for s in policy_statements(resource_policy(lam, name))],
            function_url_auth_type=url.get("AuthType") if url else None,
            role_shared_with=_functions_with_role(lam, config["Role"], name),
            captured_at=datetime.now(UTC),
        )


# --- containment: throttle ---


@aws_activity("lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency")
def throttle_function(step: LambdaStepInput) -> StepResult:
    """Reserved concurrency 0: Lambda throttles every invocation, of every version and alias, however it
    is invoked. Synchronous callers get a throttling error; asynchronous events are retried by Lambda
    until their maximum event age, then go to the function's failure destination (or are dropped);
    queue and stream records wait in their source."""
    lam, name = lambda_client(step.target), step.prior.function_name
    with typed_aws_errors(f"throttle Lambda function {name}"):
        if reserved_concurrency(lam, name) == 0:
            return StepResult(changed=False, detail={"reserved_concurrency": 0})
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    return StepResult(changed=True, detail={"reserved_concurrency": 0, "was": step.prior.reserved_concurrency})


@aws_activity("lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency")
def restore_function_concurrency(step: LambdaStepInput) -> StepResult:
    """The reserved concurrency the function had, or none at all if it had none."""
    lam, name, before = lambda_client(step.target), step.prior.function_name, step.prior.reserved_concurrency
    with typed_aws_errors(f"restore concurrency of Lambda function {name}"):
        if reserved_concurrency(lam, name) == before:
            return StepResult(changed=False, detail={"reserved_concurrency": before})
        if before is None:
            lam.delete_function_concurrency(FunctionName=name)
        else:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=before)
    return StepResult(changed=True, detail={"reserved_concurrency": before})


# --- containment: the execution role's live sessions ---


@aws_activity(*ROLE_REVOCATION_ACTIONS)
def revoke_function_role_sessions(step: LambdaStepInput) -> StepResult:
    """Deny everything to the execution role's sessions issued before containment. The function's
    environment holds those credentials (AWS_ACCESS_KEY_ID...), so compromised code may have sent them
    anywhere. Other functions running under the same role lose their current credentials too."""
    if step.issued_before is None:
        raise ApplicationError(
            "revoke_function_role_sessions needs issued_before", type=INVALID_REQUEST, non_retryable=True
        )
    role = step.prior.role_name
    detail = {
        "role": role,
        "policy": revocation_policy_name(step.target.incident_id),
        "issued_before": revocation_cutoff(step.issued_before),
        "functions_sharing_the_role": step.prior.role_shared_with,
    }
    try:
        written = put_role_revocation(_iam(step.target), role, step.target.incident_id, step.issued_before)
    except ApplicationError as error:
        if error.type != NOT_FOUND:
            raise
        # A deleted role's sessions are worthless already; nothing to deny.
        return StepResult(changed=False, detail={**detail, "reason": f"execution role {role} no longer exists"})
    return StepResult(changed=written, detail=detail)


@aws_activity(*ROLE_REVOCATION_UNDO_ACTIONS)
def remove_function_role_revocation(step: LambdaStepInput) -> StepResult:
    removed = delete_role_revocation(_iam(step.target), step.prior.role_name, step.target.incident_id)
    return StepResult(changed=removed, detail={"role": step.prior.role_name})
