"""The findings intake (infra/findings-intake.yaml) in the embedded AWS account, and findings fed to it
the way GuardDuty and Security Hub emit them: EventBridge rules deliver them to the findings queue
the finding listener reads.

Written for moto (`make run`, end-to-end tests). Where moto 5.2.5 cannot take the template as AWS
does, the correction is made here, on the way in, and never in the template:

* an ``EventPattern`` given as a JSON string (the GuardDuty rule's, for its numeric severity filter)
  is JSON-encoded a second time by moto's CloudFormation and fails the whole stack, so string
  patterns are resolved into mappings before the template is sent;
* a policy statement chosen away with ``Fn::If``/``AWS::NoValue`` stays in moto's list as a null, which
  IAM then refuses, so managed policies' conditional statements are resolved before the template is sent;
* ``AWS::SQS::QueuePolicy`` is skipped by moto's CloudFormation, so the policy is set on its queues
  afterwards, with the stack's own ARNs, whenever the stack does not list the resource;
* a DynamoDB table's ``TimeToLiveSpecification`` is ignored by moto's CloudFormation, so TTL is switched on
  afterwards for every table whose template asks for it;
* moto delivers an event to SQS without its ``account`` (its default input template leaves it out),
  so each rule's queue target is given an input transformer that rebuilds the whole event, and the
  queue receives what EventBridge would deliver.

Against AWS itself ``publish_findings`` is refused: EventBridge keeps ``aws.*`` sources for AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from irflow.intake_template import (
    TEMPLATE,
    load_template,
    parameter_values,
    resolve_event_pattern,
    rule_name,
)

__all__ = ["TEMPLATE", "load_template", "parameter_values", "resolve_event_pattern"]
REPO = Path(__file__).resolve().parents[2]

# PutEvents limits: 10 entries and 256 KiB per request.
MAX_ENTRIES_PER_PUT = 10
MAX_BYTES_PER_PUT = 256 * 1024

# Rebuilds the event EventBridge delivers, for moto's targets. "detail" comes last: moto fills the
# template by plain text replacement, in this order, and a finding whose text happened to hold "<id>"
# would otherwise be rewritten.
_WHOLE_EVENT_PATHS = {
    name: f"$.{name}"
    for name in ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
}
_WHOLE_EVENT_TEMPLATE = (
    '{"version": "<version>", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)

# IntakeStack's rule name fields, by the stack output naming each rule.
_RULE_OUTPUTS = {
    "guardduty": "GuardDutyFindingsRuleArn",
    "securityhub_imported": "SecurityHubImportedFindingsRuleArn",
    "securityhub_custom_action": "SecurityHubCustomActionRuleArn",
    "cloudtrail": "CloudTrailApiCallsRuleArn",
}


@dataclass(frozen=True)
class IntakeStack:
    stack_name: str
    region: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    guardduty_rule_name: str
    securityhub_imported_rule_name: str
    securityhub_custom_action_rule_name: str
    cloudtrail_rule_name: str
    cloudtrail_log_files_rule_name: str | None = None
    state_table_name: str | None = None  # the listeners' shared state (IRFLOW_STATE_TABLE)

    @property
    def rule_names(self) -> tuple[str, ...]:
        return (
            self.guardduty_rule_name,
            self.securityhub_imported_rule_name,
            self.securityhub_custom_action_rule_name,
            self.cloudtrail_rule_name,
        )


class PublishError(RuntimeError):
    """EventBridge refused some entries; ``failures`` holds (index in the input, code, message) and
    ``published`` how many events it accepted before this was raised (earlier batches and this one)."""

    def __init__(self, failures: list[tuple[int, str, str]], published: int):
        self.failures = failures
        self.published = published
        detail = "; ".join(f"event {index}: {code}: {message}" for index, code, message in failures)
        super().__init__(f"EventBridge refused {len(failures)} event(s), accepted {published}: {detail}")


# --- the template (irflow/intake_template.py reads it) ---------------------------------------------


def _template_for_moto(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    resources = template["Resources"]
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Events::Rule" and "EventPattern" in properties:
            properties["EventPattern"] = resolve_event_pattern(properties["EventPattern"], parameters)
        if resource["Type"] == "AWS::IAM::ManagedPolicy":  # moto turns AWS::NoValue statements into nulls
            resource["Properties"] = _choose_branches(properties, template, parameters)
    return template


# --- deploying ----------------------------------------------------------------------------------


def deploy_intake_stack(
    region: str = "us-east-1",
    stack_name: str = "irflow-intake",
    visibility_timeout: int = 60,
    max_receive_count: int = 25,
    name_prefix: str | None = None,
    guardduty_minimum_severity: float | None = None,
    cloudtrail_log_bucket: str | None = None,
    cloudtrail_log_kms_key_arn: str | None = None,
    trusted_topic_arns: list[str] | None = None,
    timeout: float = 60,
) -> IntakeStack:
    """Create the intake stack from infra/findings-intake.yaml and wait until it is complete.

    ``name_prefix`` and ``guardduty_minimum_severity`` left at None take the template's defaults;
    ``trusted_topic_arns`` are the SNS topics the queue policy lets send beside the stack's rules.
    """
    template = load_template()
    given = {
        "NamePrefix": name_prefix,
        "FindingsVisibilityTimeout": visibility_timeout,
        "FindingsMaxReceiveCount": max_receive_count,
        "GuardDutyMinimumSeverity": guardduty_minimum_severity,
        "CloudTrailLogBucket": cloudtrail_log_bucket,
        "CloudTrailLogKmsKeyArn": cloudtrail_log_kms_key_arn,
        "TrustedTopicArns": ",".join(trusted_topic_arns) if trusted_topic_arns is not None else None,
    }
    parameters = parameter_values(template, {name: value for name, value in given.items() if value is not None})
    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(_template_for_moto(template, parameters)),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )
    stack = _wait_for_creation(cloudformation, stack_name, timeout)
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    _apply_skipped_queue_policies(cloudformation, stack_name, template, parameters, region)
    _apply_skipped_time_to_live(outputs, template, region)
    rule_names = {f"{rule}_rule_name": rule_name(outputs[key])[1] for rule, key in _RULE_OUTPUTS.items()}
    log_files_arn = outputs.get("CloudTrailLogFilesRuleArn")  # only with CloudTrailLogBucket set
    log_files_rule = rule_name(log_files_arn)[1] if log_files_arn else None
    _deliver_whole_events([*rule_names.values(), *([log_files_rule] if log_files_rule else [])], region)
    return IntakeStack(
        stack_name=stack_name,
        region=region,
        queue_url=outputs["FindingsQueueUrl"],
        queue_arn=outputs["FindingsQueueArn"],
        dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
        dead_letter_queue_arn=outputs["DeadLetterQueueArn"],
        **rule_names,
        cloudtrail_log_files_rule_name=log_files_rule,
        state_table_name=outputs.get("StateTableName"),
    )


def _apply_skipped_time_to_live(outputs: dict[str, str], template: dict[str, Any], region: str) -> None:
    """TTL on for the tables the template names in an output (moto's stack resources cannot be listed: the
    resources it skipped break DescribeStackResource)."""
    dynamodb = boto3.client("dynamodb", region_name=region)
    for name, output in template.get("Outputs", {}).items():
        value = output.get("Value")
        resource = template["Resources"].get(value.get("Ref")) if isinstance(value, dict) else None
        if resource is None or resource["Type"] != "AWS::DynamoDB::Table" or name not in outputs:
            continue
        wanted = resource.get("Properties", {}).get("TimeToLiveSpecification") or {}
        table = outputs[name]
        status = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"]
        if wanted.get("Enabled") and status == "DISABLED":
            dynamodb.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"AttributeName": wanted["AttributeName"], "Enabled": True}
            )


def _wait_for_creation(cloudformation: Any, stack_name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if not status.endswith("_IN_PROGRESS"):
            reason = stack.get("StackStatusReason", "no reason given")
            raise RuntimeError(f"stack {stack_name} ended {status}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {stack_name} still {status} after {timeout}s")
        time.sleep(0.2)


def _apply_skipped_queue_policies(
    cloudformation: Any, stack_name: str, template: dict[str, Any], parameters: dict[str, str], region: str
) -> None:
    created = {
        resource["LogicalResourceId"]: resource
        for resource in cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    policies = {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SQS::QueuePolicy" and name not in created
    }
    if not policies:
        return
    sqs = boto3.client("sqs", region_name=region)
    events = boto3.client("events", region_name=region)

    def attribute(logical_id: str, name: str) -> str:
        resource = created[logical_id]
        if name == "Arn" and resource["ResourceType"] == "AWS::SQS::Queue":
            return sqs.get_queue_attributes(QueueUrl=resource["PhysicalResourceId"], AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        if name == "Arn" and resource["ResourceType"] == "AWS::Events::Rule":
            return events.describe_rule(Name=resource["PhysicalResourceId"])["Arn"]
        raise ValueError(f"cannot resolve {logical_id}.{name} for a skipped queue policy")

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            target = node["Ref"]
            if target in parameters:
                return _parameter(template, parameters, target)
            return created[target]["PhysicalResourceId"]
        if set(node) == {"Fn::GetAtt"}:
            return attribute(*node["Fn::GetAtt"])
        if any(key.startswith("Fn::") for key in node):
            raise ValueError(f"cannot resolve {sorted(node)} for a skipped queue policy")
        return {key: resolve(value) for key, value in node.items()}

    for policy in policies.values():
        properties = resolve(_choose_branches(policy["Properties"], template, parameters))
        document = json.dumps(properties["PolicyDocument"])
        for queue_url in properties["Queues"]:
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": document})


_NO_VALUE = object()  # AWS::NoValue: the list item or property is left out


def _parameter(template: dict[str, Any], parameters: dict[str, str], name: str) -> str | list[str]:
    """A parameter's value as a Ref gives it: a list for a CommaDelimitedList (empty items left out)."""
    if template["Parameters"].get(name, {}).get("Type") == "CommaDelimitedList":
        return [item.strip() for item in parameters[name].split(",") if item.strip()]
    return parameters[name]


def _condition(template: dict[str, Any], parameters: dict[str, str], name: str) -> bool:
    """A template condition made of Fn::Not, Fn::And, Fn::Equals, Condition and parameter Refs."""

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Fn::Not"}:
            return not evaluate(node["Fn::Not"][0])
        if isinstance(node, dict) and set(node) == {"Fn::And"}:
            return all(evaluate(item) for item in node["Fn::And"])
        if isinstance(node, dict) and set(node) == {"Fn::Equals"}:
            left, right = (evaluate(side) for side in node["Fn::Equals"])
            return left == right
        if isinstance(node, dict) and set(node) == {"Condition"}:
            return _condition(template, parameters, node["Condition"])
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return _parameter(template, parameters, node["Ref"])
        if isinstance(node, dict) and set(node) == {"Fn::Join"}:
            separator, items = node["Fn::Join"]
            items = evaluate(items)
            return separator.join(evaluate(item) for item in items) if isinstance(items, list) else items
        if isinstance(node, dict):
            raise ValueError(f"cannot evaluate {sorted(node)} in condition {name}")
        return node

    return bool(evaluate(template["Conditions"][name]))


def _choose_branches(node: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """Fn::If resolved to its branch, AWS::NoValue items left out (moto keeps them as nulls)."""
    if isinstance(node, list):
        chosen = [_choose_branches(item, template, parameters) for item in node]
        return [item for item in chosen if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if node == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    if set(node) == {"Fn::If"}:
        name, when_true, when_false = node["Fn::If"]
        return _choose_branches(
            when_true if _condition(template, parameters, name) else when_false, template, parameters
        )
    return {key: _choose_branches(value, template, parameters) for key, value in node.items()}


def _deliver_whole_events(rule_names: Iterable[str], region: str) -> None:
    events = boto3.client("events", region_name=region)
    transformer = {"InputPathsMap": _WHOLE_EVENT_PATHS, "InputTemplate": _WHOLE_EVENT_TEMPLATE}
    for rule in rule_names:
        targets = events.list_targets_by_rule(Rule=rule)["Targets"]
        corrected = [
            {**target, "InputTransformer": transformer}
            for target in targets
            if ":sqs:" in target["Arn"] and not ({"Input", "InputPath", "InputTransformer"} & set(target))
        ]
        if corrected:
            events.put_targets(Rule=rule, Targets=corrected)


# --- publishing ---------------------------------------------------------------------------------


def publish_findings(events: list[dict[str, Any]], region: str = "us-east-1") -> int:
    """Put full EventBridge events (as GuardDuty or Security Hub emit them) on the default bus.

    EventBridge assigns each delivered event its own ``id`` and stamps the caller's ``account`` and
    ``region``; ``source``, ``detail-type``, ``detail``, ``resources`` and ``time`` are kept.
    Raises ``PublishError`` at the first batch with a refused entry; what was accepted stays published.
    """
    client = boto3.client("events", region_name=region)
    published = 0
    for batch in _batches([_entry(index, event) for index, event in enumerate(events)]):
        response = client.put_events(Entries=[entry for _, entry, _ in batch])
        if response.get("FailedEntryCount", 0):
            failures = [
                (index, result.get("ErrorCode", "?"), result.get("ErrorMessage", ""))
                for (index, _, _), result in zip(batch, response["Entries"], strict=True)
                if "ErrorCode" in result
            ]
            raise PublishError(failures, published + len(batch) - len(failures))
        published += len(batch)
    return published


def _entry(index: int, event: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
    missing = [key for key in ("source", "detail-type", "detail") if key not in event]
    if missing:
        raise ValueError(f"event {index} is not an EventBridge event: no {', '.join(missing)}")
    entry: dict[str, Any] = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": list(event.get("resources", [])),
    }
    if event.get("time"):
        try:
            entry["Time"] = datetime.fromisoformat(event["time"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"event {index} has a time that is not ISO 8601: {event['time']!r}") from error
    # How PutEvents counts an entry towards its request limit.
    size = (
        (14 if "Time" in entry else 0)
        + len(entry["Source"].encode())
        + len(entry["DetailType"].encode())
        + len(entry["Detail"].encode())
        + sum(len(resource.encode()) for resource in entry["Resources"])
    )
    if size > MAX_BYTES_PER_PUT:
        raise ValueError(f"event {index} is {size} bytes; EventBridge takes at most {MAX_BYTES_PER_PUT}")
    return index, entry, size


def _batches(entries: Iterable[tuple[int, dict[str, Any], int]]) -> Iterator[list[tuple[int, dict[str, Any], int]]]:
    batch: list[tuple[int, dict[str, Any], int]] = []
    batch_size = 0
    for item in entries:
        if batch and (len(batch) == MAX_ENTRIES_PER_PUT or batch_size + item[2] > MAX_BYTES_PER_PUT):
            yield batch
            batch, batch_size = [], 0
        batch.append(item)
        batch_size += item[2]
    if batch:
        yield batch


def securityhub_event(
    findings: list[dict[str, Any]],
    detail_type: str = "Security Hub Findings - Imported",
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The EventBridge event Security Hub emits for ASFF findings it imported."""
    if not findings:
        raise ValueError("a Security Hub event carries at least one finding")
    moment = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    account = findings[0].get("AwsAccountId", "123456789012")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.securityhub",
        "account": account,
        "time": moment,
        "region": region,
        "resources": [f"{finding['ProductArn']}/{finding['Id']}" for finding in findings],
        "detail": {"findings": findings},
    }
