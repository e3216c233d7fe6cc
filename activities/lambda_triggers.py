"""Lambda eradication, after approval: detach the function from what triggers it.

First every trigger is recorded as evidence, so it can be put back by hand; then the event source
mappings that deliver records are disabled (not deleted) and the resource-policy statements that let
anyone outside the account act on the function are removed. The function itself stays, throttled.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from activities.aws import aws_activity, error_code, typed_aws_errors
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from activities.lambda_function import (
    absent_is_none,
    event_source_mappings,
    get_function,
    lambda_client,
    list_aliases,
    policy_statements,
    qualifiers,
    resource_policy,
)
from irflow.models.evidence import EvidenceObject
from irflow.models.incident import StepResult
from irflow.models.lambda_function import LambdaStepInput

# States in which a mapping delivers records (or is about to): eradication disables these.
_MAPPING_OFF = {"Disabled", "Disabling", "Deleting"}
_ACCOUNT_ID = re.compile(r"^\d{12}$")


def _outside_principals(statement: dict[str, Any], own_account: str) -> list[str]:
    """Who, outside the function's own account, an Allow statement lets act on the function: everyone,
    AWS services (the push triggers: S3, SNS, EventBridge, API Gateway...), other accounts."""
    if statement.get("Effect", "Allow") != "Allow":
        return []
    if "NotPrincipal" in statement:
        return ["NotPrincipal: everyone else"]
    principal = statement.get("Principal")
    if principal is None:
        return []
    if principal == "*":
        return ["*"]
    if isinstance(principal, str):
        principal = {"AWS": principal}
    outside = []
    for kind, values in principal.items():
        for value in values if isinstance(values, list) else [values]:
            if kind != "AWS":
                outside.append(f"{kind}:{value}")
                continue
            if value == "*":
                outside.append("*")
                continue
            if _ACCOUNT_ID.match(value):
                account = value
            else:
                parts = value.split(":")
                account = parts[4] if value.startswith("arn:") and len(parts) > 4 else None
            if account != own_account:
                outside.append(value)
    return outside


def _account_of(function_arn: str) -> str:
    return function_arn.split(":")[4]


def _trigger_plan(lam, step: LambdaStepInput) -> dict[str, Any]:
    name, own = step.prior.function_name, _account_of(step.prior.function_arn)
    aliases = list_aliases(lam, name)
    policies, removable = {}, []
    for qualifier in qualifiers(aliases):
        policy = resource_policy(lam, name, qualifier)
        policies[qualifier or "$function"] = policy
        for statement in policy_statements(policy):
            outside = _outside_principals(statement, own)
            if outside:
                removable.append({"qualifier": qualifier, "sid": statement.get("Sid"), "principals": outside})
    mappings = event_source_mappings(lam, name, [a["AliasArn"] for a in aliases])
    return {
        "event_source_mappings": mappings,
        "mappings_to_disable": [m["UUID"] for m in mappings if m.get("State") not in _MAPPING_OFF],
        "resource_policies": policies,
        "statements_to_remove": removable,
    }


@aws_activity(
    "lambda:GetFunction",
    "lambda:ListAliases",
    "lambda:ListEventSourceMappings",
    "lambda:GetPolicy",
    *EVIDENCE_WRITE_ACTIONS,
)
def record_lambda_triggers(step: LambdaStepInput) -> EvidenceObject:
    """Before eradication changes anything: every event source mapping and resource-policy statement
    (function and aliases), and which of them eradication disables or removes, so they can be put back
    by hand. First capture wins: a retry after a partial eradication keeps the original record."""
    name = step.prior.function_name
    get_function(step.target)
    with typed_aws_errors(f"record the triggers of Lambda function {name}"):
        plan = _trigger_plan(lambda_client(step.target), step)
    document = {"collected_at": datetime.now(UTC).isoformat(), "function_arn": step.prior.function_arn, **plan}
    return store_evidence(
        step.target.incident_id,
        f"lambda/{name}/triggers-before-eradication.json",
        to_json_bytes(document),
        "lambda-triggers",
    )


@aws_activity("lambda:ListAliases", "lambda:ListEventSourceMappings", "lambda:UpdateEventSourceMapping")
def disable_event_source_mappings(step: LambdaStepInput) -> StepResult:
    """Every mapping of the function (and its aliases) that delivers records is disabled, not deleted:
    its configuration, and the position it had reached in a stream, stay for whoever re-enables it."""
    lam, name = lambda_client(step.target), step.prior.function_name
    disabled, already, gone = [], [], []
    with typed_aws_errors(f"disable the event source mappings of Lambda function {name}"):
        for mapping in event_source_mappings(lam, name, [a["AliasArn"] for a in list_aliases(lam, name)]):
            uuid, state = mapping["UUID"], mapping.get("State")
            if state in _MAPPING_OFF:
                already.append(uuid)
                continue
            try:
                lam.update_event_source_mapping(UUID=uuid, Enabled=False)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise
                gone.append(uuid)
                continue
            disabled.append({"uuid": uuid, "event_source_arn": mapping.get("EventSourceArn"), "prior_state": state})
    return StepResult(changed=bool(disabled), detail={"disabled": disabled, "already_disabled": already, "gone": gone})


@aws_activity("lambda:ListAliases", "lambda:GetPolicy", "lambda:RemovePermission")
def remove_invoke_permissions(step: LambdaStepInput) -> StepResult:
    """Remove each resource-policy statement (of the function and of its aliases) that lets anyone
    outside the account act on it: everyone (a public function URL), AWS services (the push triggers:
    S3 notifications, SNS, EventBridge rules, API Gateway...), other accounts. Statements for the
    account's own principals stay: they need IAM permissions in the account anyway."""
    lam, name = lambda_client(step.target), step.prior.function_name
    own = _account_of(step.prior.function_arn)
    removed, kept, unremovable = [], [], []
    with typed_aws_errors(f"remove outside permissions from Lambda function {name}"):
        for qualifier in qualifiers(list_aliases(lam, name)):
            where = qualifier or "$function"
            for statement in policy_statements(resource_policy(lam, name, qualifier)):
                sid = statement.get("Sid")
                outside = _outside_principals(statement, own)
                if not outside:
                    kept.append(f"{where}/{sid}")
                    continue
                if not sid:
                    unremovable.append({"where": where, "principals": outside})
                    continue
                arguments = {
                    "FunctionName": name,
                    "StatementId": sid,
                    **({"Qualifier": qualifier} if qualifier else {}),
                }
                if absent_is_none(lambda a=arguments: lam.remove_permission(**a)) is not None:
                    removed.append({"where": where, "sid": sid, "principals": outside})
    return StepResult(changed=bool(removed), detail={"removed": removed, "kept": kept, "without_sid": unremovable})
