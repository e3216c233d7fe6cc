"""Lambda functions: throttle to zero, cut the execution role's live sessions, keep the configuration and
the code package as evidence, and (after approval) detach the function from what triggers it.

Each containment step looks at the current state before acting and has an exact undo. The function is
never deleted, and its code is never changed: what ran is the evidence.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import INVALID_REQUEST, NOT_FOUND, aws_activity, client, error_code, heartbeat, typed_aws_errors
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from activities.iam import (
    ROLE_REVOCATION_ACTIONS,
    ROLE_REVOCATION_UNDO_ACTIONS,
    delete_role_revocation,
    put_role_revocation,
    revocation_cutoff,
    revocation_policy_name,
)
from irflow.models.incident import EvidenceObject, StepResult
from irflow.models.lambda_function import EventSourceMappingState, LambdaContext, LambdaStepInput, LambdaTarget

# A deployment package is at most 250 MB unzipped (so less zipped); anything bigger is not a package.
MAX_CODE_BYTES = 256 * 1024 * 1024
CODE_DOWNLOAD_ATTEMPTS = 3
CODE_DOWNLOAD_TIMEOUT_SECONDS = 60
_CHUNK = 1024 * 1024
# States in which a mapping delivers records (or is about to): eradication disables these.
_MAPPING_OFF = {"Disabled", "Disabling", "Deleting"}
_ACCOUNT_ID = re.compile(r"^\d{12}$")


def _lambda(target: LambdaTarget):
    return client("lambda", target.region, target.account_id)


def _iam(target: LambdaTarget):
    return client("iam", target.region, target.account_id)


def role_name_from_arn(role_arn: str) -> str:
    """arn:aws:iam::123456789012:role/service-role/name → name (RoleName never includes the path)."""
    return role_arn.rsplit("/", 1)[-1]


def unqualified_arn(function_arn: str) -> str:
    """arn:aws:lambda:region:account:function:name[:qualifier] → without the qualifier."""
    return ":".join(function_arn.split(":")[:7])


def _absent_is_none(call: Callable[[], Any]) -> Any:
    """The response, or None when Lambda says the thing asked about (a policy, a URL) does not exist.
    Only meaningful after GetFunction has shown the function itself exists."""
    try:
        return call()
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise


def _get_function(target: LambdaTarget) -> dict[str, Any]:
    if not target.function_name:
        raise ApplicationError("the finding names no Lambda function", type=INVALID_REQUEST, non_retryable=True)
    with typed_aws_errors(f"describe Lambda function {target.function_name}"):
        response = _lambda(target).get_function(FunctionName=target.function_name)
    response.pop("ResponseMetadata", None)
    return response


def _reserved_concurrency(lam, name: str) -> int | None:
    return lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")


def _tags(lam, function_arn: str) -> dict[str, str]:
    return dict(lam.list_tags(Resource=unqualified_arn(function_arn)).get("Tags") or {})


def _aliases(lam, name: str) -> list[dict[str, Any]]:
    return [a for page in lam.get_paginator("list_aliases").paginate(FunctionName=name) for a in page["Aliases"]]


def _event_source_mappings(lam, name: str, alias_arns: list[str]) -> list[dict[str, Any]]:
    """Mappings of the function and of each alias (a mapping may name an alias), once each."""
    found: dict[str, dict[str, Any]] = {}
    for function in (name, *alias_arns):
        for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=function):
            for mapping in page["EventSourceMappings"]:
                found.setdefault(mapping["UUID"], mapping)
    return [found[uuid] for uuid in sorted(found)]


def _policy(lam, name: str, qualifier: str | None = None) -> dict[str, Any] | None:
    """The resource-based policy of the function (or of one alias), parsed; None when there is none."""
    arguments = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
    response = _absent_is_none(lambda: lam.get_policy(**arguments))
    if response is None:
        return None
    policy = response["Policy"]
    return json.loads(policy) if isinstance(policy, str) else policy


def _statements(policy: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


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
    function = _get_function(target)
    config = function["Configuration"]
    name, arn = config["FunctionName"], unqualified_arn(config["FunctionArn"])
    lam = _lambda(target)
    with typed_aws_errors(f"describe Lambda function {name}"):
        aliases = _aliases(lam, name)
        mappings = _event_source_mappings(lam, name, [a["AliasArn"] for a in aliases])
        url = _absent_is_none(lambda: lam.get_function_url_config(FunctionName=name))
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
            reserved_concurrency=_reserved_concurrency(lam, name),
            tags=_tags(lam, arn),
            aliases=sorted(a["Name"] for a in aliases),
            event_source_mappings=[_mapping_state(m) for m in mappings],
            policy_statement_ids=[s.get("Sid", "") for s in _statements(_policy(lam, name))],
            function_url_auth_type=url.get("AuthType") if url else None,
            role_shared_with=_functions_with_role(lam, config["Role"], name),
            captured_at=datetime.now(UTC),
        )


# --- containment: tag ---


# --- containment: throttle ---


@aws_activity("lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency")
def throttle_function(step: LambdaStepInput) -> StepResult:
    """Reserved concurrency 0: Lambda throttles every invocation, of every version and alias, however it
    is invoked. Synchronous callers get a throttling error; asynchronous events are retried by Lambda
    until their maximum event age, then go to the function's failure destination (or are dropped);
    queue and stream records wait in their source."""
    lam, name = _lambda(step.target), step.prior.function_name
    with typed_aws_errors(f"throttle Lambda function {name}"):
        if _reserved_concurrency(lam, name) == 0:
            return StepResult(changed=False, detail={"reserved_concurrency": 0})
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    return StepResult(changed=True, detail={"reserved_concurrency": 0, "was": step.prior.reserved_concurrency})


@aws_activity("lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency")
def restore_function_concurrency(step: LambdaStepInput) -> StepResult:
    """The reserved concurrency the function had, or none at all if it had none."""
    lam, name, before = _lambda(step.target), step.prior.function_name, step.prior.reserved_concurrency
    with typed_aws_errors(f"restore concurrency of Lambda function {name}"):
        if _reserved_concurrency(lam, name) == before:
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


# --- evidence ---


def _without_metadata(response: Any) -> Any:
    if isinstance(response, dict):
        response.pop("ResponseMetadata", None)
    return response


def _best_effort(call: Callable[[], Any]) -> Any:
    """The response, or the error: evidence that an API could not be read is evidence too."""
    try:
        return _without_metadata(call())
    except ClientError as error:
        return {"error": error_code(error) or str(error)}


@aws_activity(
    "lambda:GetFunction",
    "lambda:GetFunctionConcurrency",
    "lambda:GetPolicy",
    "lambda:ListEventSourceMappings",
    "lambda:GetFunctionUrlConfig",
    "lambda:ListAliases",
    "lambda:ListVersionsByFunction",
    "lambda:ListTags",
    "lambda:GetFunctionEventInvokeConfig",
    "lambda:ListProvisionedConcurrencyConfigs",
    *EVIDENCE_WRITE_ACTIONS,
)
def collect_lambda_evidence(step: LambdaStepInput) -> EvidenceObject:
    """The function as Lambda describes it (configuration with environment, code location and SHA-256,
    layers, tags, concurrency), its resource-based policies (function and aliases), event source
    mappings, function URL, aliases and versions, asynchronous destinations and provisioned concurrency,
    beside the state irflow saved before containing it."""
    lam, name = _lambda(step.target), step.prior.function_name
    function = _get_function(step.target)
    with typed_aws_errors(f"collect evidence about Lambda function {name}"):
        aliases = _aliases(lam, name)
        policies = {q or "$function": _policy(lam, name, q) for q in _qualifiers(aliases)}
        mappings = _event_source_mappings(lam, name, [a["AliasArn"] for a in aliases])
        document = {
            "collected_at": datetime.now(UTC).isoformat(),
            "prior": step.prior.model_dump(mode="json"),
            "function": function,
            "reserved_concurrency": _reserved_concurrency(lam, name),
            "tags": _tags(lam, step.prior.function_arn),
            "resource_policies": policies,
            "event_source_mappings": mappings,
            "aliases": aliases,
            "versions": [
                v
                for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name)
                for v in page["Versions"]
            ],
            "function_url": _without_metadata(_absent_is_none(lambda: lam.get_function_url_config(FunctionName=name))),
            "event_invoke_config": _best_effort(lambda: lam.get_function_event_invoke_config(FunctionName=name)),
            "provisioned_concurrency": _best_effort(
                lambda: lam.list_provisioned_concurrency_configs(FunctionName=name)
            ),
        }
    return store_evidence(
        step.target.incident_id, f"lambda/{name}/configuration.json", to_json_bytes(document), "lambda-function"
    )


class CodeUnavailable(Exception):
    """The package cannot be fetched from its location; the reason is recorded instead."""


def _download(url: str, limit: int = MAX_CODE_BYTES) -> bytes:
    """GET the package from its pre-signed location (no AWS credentials are sent), at most `limit` bytes.

    Transient failures are retried a few times here; whatever still fails is a CodeUnavailable."""
    scheme = urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise CodeUnavailable(f"the code location is not an HTTP(S) URL (scheme {scheme!r})")
    last = ""
    for attempt in range(CODE_DOWNLOAD_ATTEMPTS):
        if attempt:
            time.sleep(2**attempt)
        try:
            with urllib.request.urlopen(url, timeout=CODE_DOWNLOAD_TIMEOUT_SECONDS) as response:
                declared = int(response.headers.get("Content-Length") or 0)
                if declared > limit:
                    raise CodeUnavailable(f"the package is {declared} bytes, more than the {limit} irflow keeps")
                body = bytearray()
                while chunk := response.read(_CHUNK):
                    body.extend(chunk)
                    heartbeat(len(body))
                    if len(body) > limit:
                        raise CodeUnavailable(f"the package is more than the {limit} bytes irflow keeps")
                return bytes(body)
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code} {error.reason} from the code location"
            if error.code < 500 and error.code != 429:
                raise CodeUnavailable(last) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            last = f"the code location could not be reached: {reason}"
    raise CodeUnavailable(f"{last} (after {CODE_DOWNLOAD_ATTEMPTS} attempts)")


@aws_activity("lambda:GetFunction", *EVIDENCE_WRITE_ACTIONS)
def collect_lambda_code(step: LambdaStepInput) -> list[EvidenceObject]:
    """The deployment package, downloaded from the location GetFunction gives and checked against the
    function's CodeSha256, plus a record of where the code is (always): an image function's code is
    its container image (kept in ECR, named by digest); a package that cannot be fetched is recorded
    with the reason. Layers are listed, not downloaded."""
    name = step.prior.function_name
    function = _get_function(step.target)
    config, code = function["Configuration"], function.get("Code") or {}
    record: dict[str, Any] = {
        "collected_at": datetime.now(UTC).isoformat(),
        "function_arn": config.get("FunctionArn"),
        "package_type": config.get("PackageType"),
        "repository_type": code.get("RepositoryType"),
        "code_sha256": config.get("CodeSha256"),
        "code_size": config.get("CodeSize"),
        "location": code.get("Location"),
        "image_uri": code.get("ImageUri"),
        "resolved_image_uri": code.get("ResolvedImageUri"),
        "layers": [layer.get("Arn") for layer in config.get("Layers") or []],
        "captured": False,
    }
    stored: list[EvidenceObject] = []
    if code.get("Location"):
        try:
            body = _download(code["Location"])
        except CodeUnavailable as why:
            record["reason"] = str(why)
        else:
            digest = hashlib.sha256(body)
            if config.get("CodeSha256") and base64.b64encode(digest.digest()).decode() != config["CodeSha256"]:
                # Location and CodeSha256 come from the same GetFunction: the bytes were altered on the way.
                raise ApplicationError(
                    f"the code package of {name} does not match its CodeSha256", type="EvidenceIntegrity"
                )
            package = store_evidence(
                step.target.incident_id,
                f"lambda/{name}/code-{digest.hexdigest()[:16]}.zip",
                body,
                "lambda-code-package",
                content_type="application/zip",
            )
            stored.append(package)
            record.update(captured=True, package_key=package.key, package_sha256=package.sha256)
    elif code.get("RepositoryType") == "ECR" or code.get("ImageUri"):
        image = code.get("ResolvedImageUri") or code.get("ImageUri")
        record["reason"] = f"an image function: its code is the container image {image}; keep that image by digest"
    else:
        record["reason"] = "GetFunction gave no code location"
    summary = store_evidence(step.target.incident_id, f"lambda/{name}/code.json", to_json_bytes(record), "lambda-code")
    return [summary, *stored]


# --- eradication (after approval): detach the triggers ---


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


def _qualifiers(aliases: list[dict[str, Any]]) -> list[str | None]:
    """The function itself (no qualifier) and each alias: every alias has its own resource policy."""
    return [None, *sorted(a["Name"] for a in aliases)]


def _trigger_plan(lam, step: LambdaStepInput) -> dict[str, Any]:
    name, own = step.prior.function_name, _account_of(step.prior.function_arn)
    aliases = _aliases(lam, name)
    policies, removable = {}, []
    for qualifier in _qualifiers(aliases):
        policy = _policy(lam, name, qualifier)
        policies[qualifier or "$function"] = policy
        for statement in _statements(policy):
            outside = _outside_principals(statement, own)
            if outside:
                removable.append({"qualifier": qualifier, "sid": statement.get("Sid"), "principals": outside})
    mappings = _event_source_mappings(lam, name, [a["AliasArn"] for a in aliases])
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
    _get_function(step.target)
    with typed_aws_errors(f"record the triggers of Lambda function {name}"):
        plan = _trigger_plan(_lambda(step.target), step)
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
    lam, name = _lambda(step.target), step.prior.function_name
    disabled, already, gone = [], [], []
    with typed_aws_errors(f"disable the event source mappings of Lambda function {name}"):
        for mapping in _event_source_mappings(lam, name, [a["AliasArn"] for a in _aliases(lam, name)]):
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
    lam, name = _lambda(step.target), step.prior.function_name
    own = _account_of(step.prior.function_arn)
    removed, kept, unremovable = [], [], []
    with typed_aws_errors(f"remove outside permissions from Lambda function {name}"):
        for qualifier in _qualifiers(_aliases(lam, name)):
            where = qualifier or "$function"
            for statement in _statements(_policy(lam, name, qualifier)):
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
                if _absent_is_none(lambda a=arguments: lam.remove_permission(**a)) is not None:
                    removed.append({"where": where, "sid": sid, "principals": outside})
    return StepResult(changed=bool(removed), detail={"removed": removed, "kept": kept, "without_sid": unremovable})
