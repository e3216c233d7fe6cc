"""Readiness of the findings intake (infra/findings-intake.yaml, the CloudFormation stack IRFLOW_INTAKE_STACK_NAME)
in each region of the security account: the stack, its EventBridge rules, the findings queue's redrive to the
dead-letter queue, and the queue policy that lets nobody but the stack's rules (and trusted topics) send.

What the template declares is read from the stack's outputs (`_QUEUE_OUTPUTS`, `_RULE_OUTPUTS`; the tests hold
them to the template), so the checks compare what is deployed with what the template made."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from activities.aws import client, error_code
from activities.readiness_common import Verdict, failed, passed, readiness_check, unknown
from irflow.models.readiness import ReadinessScope
from irflow.models.settings import get_settings

TEMPLATE = "infra/findings-intake.yaml"
_QUEUE_OUTPUTS = ("FindingsQueueUrl", "FindingsQueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn")
# The rules that bring findings, by the output naming each and the template's logical id (the CloudTrail API calls
# rule has a check of its own, cloudtrail.eventbridge; the log files rule exists only with CloudTrailLogBucket).
_RULE_OUTPUTS = {
    "GuardDutyFindingsRuleArn": "GuardDutyFindingsRule",
    "SecurityHubImportedFindingsRuleArn": "SecurityHubImportedFindingsRule",
    "SecurityHubCustomActionRuleArn": "SecurityHubCustomActionRule",
}
_OPTIONAL_RULE_OUTPUTS = {"CloudTrailLogFilesRuleArn": "CloudTrailLogFilesRule"}
_CLOUDTRAIL_RULE_OUTPUT = ("CloudTrailApiCallsRuleArn", "CloudTrailApiCallsRule")
REQUIRED_OUTPUTS = (*_QUEUE_OUTPUTS, *_RULE_OUTPUTS, _CLOUDTRAIL_RULE_OUTPUT[0])
_WORKING = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
_QUEUE_GONE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_IAM_READ = ("cloudformation:DescribeStacks",)


class Intake(NamedTuple):
    name: str
    status: str
    reason: str
    outputs: dict[str, str]
    trusted_topics: list[str]


def deploy_line(scope: ReadinessScope) -> str:
    name = get_settings().intake_stack_name
    return (
        f"aws cloudformation deploy --template-file {TEMPLATE} --stack-name {name} "
        f"--capabilities CAPABILITY_NAMED_IAM --region {scope.region}"
    )


def read_intake(scope: ReadinessScope) -> Intake | Verdict:
    """The intake stack of the scope's region in the security account (the worker's own credentials), or the
    verdict of its absence."""
    name = get_settings().intake_stack_name
    try:
        [stack] = client("cloudformation", scope.region).describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if error_code(error) == "ValidationError" and "does not exist" in str(error):
            return failed(
                f"no CloudFormation stack {name} in {scope.region}: no finding reaches irflow's queue here",
                deploy_line(scope),
            )
        raise
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return Intake(
        name=name,
        status=stack["StackStatus"],
        reason=stack.get("StackStatusReason", ""),
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        trusted_topics=re.findall(r"arn:[^\s,'\"\]]+", parameters.get("TrustedTopicArns", "")),
    )


def _lacking(intake: Intake, scope: ReadinessScope, keys: tuple[str, ...]) -> Verdict | None:
    missing = [key for key in keys if key not in intake.outputs]
    if not missing:
        return None
    return failed(
        f"stack {intake.name} ({intake.status}) has no output {', '.join(missing)}: it is not {TEMPLATE} as "
        "this irflow knows it",
        deploy_line(scope),
    )


def _with_outputs(scope: ReadinessScope, *keys: str) -> Intake | Verdict:
    intake = read_intake(scope)
    if isinstance(intake, Verdict):
        return intake
    return _lacking(intake, scope, keys) or intake


@readiness_check("intake.stack", f"The findings intake stack ({TEMPLATE}) is deployed", *_IAM_READ, reach="security")
def intake_stack(scope: ReadinessScope) -> Verdict:
    """The stack exists, is in a working state, and has every output the template declares."""
    intake = read_intake(scope)
    if isinstance(intake, Verdict):
        return intake
    if intake.status.endswith("_IN_PROGRESS"):
        return unknown(f"stack {intake.name} is being changed ({intake.status})")
    if intake.status not in _WORKING:
        reason = f": {intake.reason}" if intake.reason else ""
        return failed(
            f"stack {intake.name} is {intake.status}{reason}",
            f"see `aws cloudformation describe-stack-events --stack-name {intake.name} --region {scope.region}`; "
            f"a stack that never completed is deleted (aws cloudformation delete-stack --stack-name {intake.name}) "
            f"and deployed again: {deploy_line(scope)}",
        )
    lacking = _lacking(intake, scope, REQUIRED_OUTPUTS)
    if lacking is not None:
        return lacking
    return passed(f"stack {intake.name} is {intake.status}; findings queue {intake.outputs['FindingsQueueUrl']}")


def _rule_name(arn: str) -> tuple[str, str]:
    """(bus, name) of a rule ARN: rule/<name> on the default bus, rule/<bus>/<name> on another."""
    path = arn.split(":rule/", 1)[1]
    bus, _, name = path.rpartition("/")
    return bus or "default", name


def rule_problem(scope: ReadinessScope, arn: str, logical_id: str, queue_arn: str) -> tuple[str, str] | None:
    """What is wrong with one of the stack's rules (evidence, fix), None when it is ENABLED and targets the queue."""
    bus, name = _rule_name(arn)
    events = client("events", scope.region)
    where = f"--region {scope.region}" + (f" --event-bus-name {bus}" if bus != "default" else "")
    try:
        rule = events.describe_rule(Name=name, EventBusName=bus)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return (
            f"rule {name} is gone",
            f"recreate it as {TEMPLATE} declares {logical_id} (a rule deleted outside CloudFormation is not "
            f"recreated by a deploy): aws events put-rule --name {name} --event-pattern file://pattern.json {where} "
            f"with the EventPattern of {logical_id}, then aws events put-targets --rule {name} "
            f"--targets Id=findings-queue,Arn={queue_arn} {where}",
        )
    if rule.get("State") != "ENABLED":
        return f"rule {name} is {rule.get('State')}", f"aws events enable-rule --name {name} {where}"
    targets = events.list_targets_by_rule(Rule=name, EventBusName=bus).get("Targets", [])
    if not any(target.get("Arn") == queue_arn for target in targets):
        aimed = ", ".join(t.get("Arn", "?") for t in targets) or "nothing"
        return (
            f"rule {name} targets {aimed}, not the findings queue",
            f"aws events put-targets --rule {name} --targets Id=findings-queue,Arn={queue_arn} {where}",
        )
    return None


def _rules_verdict(scope: ReadinessScope, intake: Intake, rules: dict[str, str]) -> Verdict:
    queue_arn = intake.outputs["FindingsQueueArn"]
    problems = [
        problem
        for output, logical_id in rules.items()
        if output in intake.outputs
        and (problem := rule_problem(scope, intake.outputs[output], logical_id, queue_arn)) is not None
    ]
    names = ", ".join(_rule_name(intake.outputs[o])[1] for o in rules if o in intake.outputs)
    if problems:
        return failed("; ".join(e for e, _ in problems), "; ".join(f for _, f in problems))
    return passed(f"{names}: ENABLED, each targeting {queue_arn}")


_READ_RULES = ("events:DescribeRule", "events:ListTargetsByRule")


@readiness_check(
    "intake.rules",
    "The intake's EventBridge rules are enabled and target the findings queue",
    *_IAM_READ,
    *_READ_RULES,
    reach="security",
)
def intake_rules(scope: ReadinessScope) -> Verdict:
    """The GuardDuty and Security Hub rules (and the CloudTrail log files rule, where the stack has it): each
    exists, is ENABLED, and has the findings queue as a target."""
    intake = _with_outputs(scope, "FindingsQueueArn", *_RULE_OUTPUTS)
    if isinstance(intake, Verdict):
        return intake
    return _rules_verdict(scope, intake, {**_RULE_OUTPUTS, **_OPTIONAL_RULE_OUTPUTS})


@readiness_check(
    "cloudtrail.eventbridge",
    "CloudTrail API calls reach the findings queue through EventBridge",
    *_IAM_READ,
    *_READ_RULES,
    reach="security",
)
def cloudtrail_eventbridge(scope: ReadinessScope) -> Verdict:
    """The intake's CloudTrail API calls rule exists, is ENABLED and targets the findings queue: irflow's detection
    rules see calls seconds after they are made."""
    output, logical_id = _CLOUDTRAIL_RULE_OUTPUT
    intake = _with_outputs(scope, "FindingsQueueArn", output)
    if isinstance(intake, Verdict):
        return intake
    return _rules_verdict(scope, intake, {output: logical_id})


def _queue_attributes(scope: ReadinessScope, url: str, *names: str) -> dict[str, str] | None:
    try:
        return client("sqs", scope.region).get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]
    except ClientError as error:
        if error_code(error) in _QUEUE_GONE:
            return None
        raise


def _queue_gone(scope: ReadinessScope, intake: Intake, url: str) -> Verdict:
    return failed(
        f"queue {url} of stack {intake.name} is gone",
        f"a queue deleted outside CloudFormation is not recreated by a deploy: aws cloudformation delete-stack "
        f"--stack-name {intake.name} --region {scope.region}, then {deploy_line(scope)} (the queue's URL stays the "
        "same: its name comes from NamePrefix)",
    )


@readiness_check(
    "intake.redrive",
    "The findings queue sends what the listener gives up on to its dead-letter queue",
    *_IAM_READ,
    "sqs:GetQueueAttributes",
    reach="security",
)
def intake_redrive(scope: ReadinessScope) -> Verdict:
    """The findings queue's RedrivePolicy names the stack's dead-letter queue, which exists."""
    intake = _with_outputs(scope, *_QUEUE_OUTPUTS)
    if isinstance(intake, Verdict):
        return intake
    url, dead_letters = intake.outputs["FindingsQueueUrl"], intake.outputs["DeadLetterQueueArn"]
    attributes = _queue_attributes(scope, url, "RedrivePolicy")
    if attributes is None:
        return _queue_gone(scope, intake, url)
    redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    target, receives = redrive.get("deadLetterTargetArn", ""), redrive.get("maxReceiveCount", 25)
    if target != dead_letters:
        policy = json.dumps({"deadLetterTargetArn": dead_letters, "maxReceiveCount": str(receives)})
        found = f"redrives to {target}" if target else "has no redrive policy"
        return failed(
            f"findings queue {url} {found}, not to {dead_letters}: a finding the listener keeps failing on is "
            "received again and again, then lost when it expires",
            f"aws sqs set-queue-attributes --queue-url {url} --region {scope.region} --attributes "
            f"'{json.dumps({'RedrivePolicy': policy})}'",
        )
    if _queue_attributes(scope, intake.outputs["DeadLetterQueueUrl"], "QueueArn") is None:
        return _queue_gone(scope, intake, intake.outputs["DeadLetterQueueUrl"])
    return passed(f"findings queue {url} redrives to {dead_letters} after {receives} receives")


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _to_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and "*" in _as_list(principal.get("AWS", []))


def _covers(patterns: Any, value: str) -> bool:
    return any(fnmatchcase(value.lower(), str(p).lower()) for p in _as_list(patterns))


def sender_exemptions(policy: dict, queue_arn: str) -> list[list[str]]:
    """For each statement denying sqs:SendMessage on the queue to everyone, the sources (aws:SourceArn) it lets
    through; a Deny whose condition tests anything else is left out (it may not deny what it seems to)."""
    found = []
    for statement in _as_list(policy.get("Statement", [])):
        if statement.get("Effect") != "Deny" or not _to_everyone(statement.get("Principal")):
            continue
        if not _covers(statement.get("Action", []), "sqs:SendMessage"):
            continue
        if not _covers(statement.get("Resource", "*"), queue_arn):
            continue
        condition = statement.get("Condition", {})
        exempt: list[str] = []
        if any(op not in ("ArnNotEquals", "ArnNotLike") for op in condition):
            continue
        if any(key.lower() != "aws:sourcearn" for tests in condition.values() for key in tests):
            continue
        for tests in condition.values():
            exempt += [str(v) for values in tests.values() for v in _as_list(values)]
        found.append(exempt)
    return found


@readiness_check(
    "intake.queue_policy",
    "The findings queue's policy lets only the intake's rules and trusted topics send",
    *_IAM_READ,
    "sqs:GetQueueAttributes",
    reach="security",
)
def intake_queue_policy(scope: ReadinessScope) -> Verdict:
    """As the template's FindingsQueuePolicy: a Deny of sqs:SendMessage to everyone unless aws:SourceArn is one of
    the stack's rules or the stack's TrustedTopicArns. The listener believes what is on the queue."""
    intake = _with_outputs(scope, "FindingsQueueUrl", "FindingsQueueArn")
    if isinstance(intake, Verdict):
        return intake
    url, queue_arn = intake.outputs["FindingsQueueUrl"], intake.outputs["FindingsQueueArn"]
    attributes = _queue_attributes(scope, url, "Policy")
    if attributes is None:
        return _queue_gone(scope, intake, url)
    policy = json.loads(attributes.get("Policy") or "{}")
    expected = {v for k, v in intake.outputs.items() if k.endswith("RuleArn")} | set(intake.trusted_topics)
    fix = (
        f"restore the policy {TEMPLATE} declares (FindingsQueuePolicy: its NobodyElseMaySend statement denies "
        f"sqs:SendMessage unless aws:SourceArn is one of the stack's rules or trusted topics): aws sqs "
        f"set-queue-attributes --queue-url {url} --region {scope.region} --attributes file://queue-policy.json"
    )
    denials = sender_exemptions(policy, queue_arn)
    if not denials:
        return failed(f"no statement of {url}'s policy denies other senders: anyone allowed to send can inject", fix)
    tight = [exempt for exempt in denials if set(exempt) <= expected]
    if not tight:
        extra = sorted(set(denials[0]) - expected)
        return failed(f"the queue policy's Deny lets through {', '.join(extra)}, which the stack does not name", fix)
    return passed(f"{url}: sqs:SendMessage denied to all but {len(tight[0])} source(s) of the stack")
