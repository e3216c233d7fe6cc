"""Lambda evidence: the function as Lambda describes it (configuration, policies, triggers, aliases,
versions), and its code package, downloaded and checked against the function's CodeSha256.

Nothing here changes the function: what ran is the evidence.
"""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from activities.aws import EVIDENCE_INTEGRITY, aws_activity, best_effort, heartbeat, typed_aws_errors, without_metadata
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from activities.lambda_function import (
    absent_is_none,
    event_source_mappings,
    function_tags,
    get_function,
    lambda_client,
    list_aliases,
    qualifiers,
    reserved_concurrency,
    resource_policy,
)
from irflow.models.evidence import EvidenceObject
from irflow.models.lambda_function import LambdaStepInput

# A deployment package is at most 250 MB unzipped (so less zipped); anything bigger is not a package.
MAX_CODE_BYTES = 256 * 1024 * 1024
CODE_DOWNLOAD_ATTEMPTS = 3
CODE_DOWNLOAD_TIMEOUT_SECONDS = 60
_CHUNK = 1024 * 1024


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
    lam, name = lambda_client(step.target), step.prior.function_name
    function = get_function(step.target)
    with typed_aws_errors(f"collect evidence about Lambda function {name}"):
        aliases = list_aliases(lam, name)
        policies = {q or "$function": resource_policy(lam, name, q) for q in qualifiers(aliases)}
        mappings = event_source_mappings(lam, name, [a["AliasArn"] for a in aliases])
        document = {
            "collected_at": datetime.now(UTC).isoformat(),
            "prior": step.prior.model_dump(mode="json"),
            "function": function,
            "reserved_concurrency": reserved_concurrency(lam, name),
            "tags": function_tags(lam, step.prior.function_arn),
            "resource_policies": policies,
            "event_source_mappings": mappings,
            "aliases": aliases,
            "versions": [
                v
                for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name)
                for v in page["Versions"]
            ],
            "function_url": without_metadata(absent_is_none(lambda: lam.get_function_url_config(FunctionName=name))),
            "event_invoke_config": best_effort(lambda: lam.get_function_event_invoke_config(FunctionName=name)),
            "provisioned_concurrency": best_effort(lambda: lam.list_provisioned_concurrency_configs(FunctionName=name)),
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
    function = get_function(step.target)
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
                    f"the code package of {name} does not match its CodeSha256", type=EVIDENCE_INTEGRITY
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
