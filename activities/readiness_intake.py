"""Readiness of the findings intake (infra/findings-intake.yaml, the CloudFormation stack IRFLOW_INTAKE_STACK_NAME)
in each region of the security account: the stack, its EventBridge rules, the findings queue's redrive to the
dead-letter queue, and the queue policy that lets nobody but the stack's rules (and trusted topics) send.

What the template declares is read from the stack's outputs (irflow/intake_template.py names them; the tests hold
them to the template) and from the template itself (each rule's EventPattern), so the checks compare what is
deployed with what the template made. The outputs are the account's word, not irflow's: each must name a queue or
rule of this account and region, and the findings queue must be one the listener reads (IRFLOW_QUEUE_URLS), or the
checks would vouch for a decoy. Every value a fix line takes from the account is shell-quoted."""

from __future__ import annotations

import json
import re
from shlex import quote
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from activities.aws import client, error_code, own_identity
from activities.readiness_common import Verdict, failed, passed, readiness_check, unknown
from activities.readiness_policy import applies, as_list, matches, statements
from irflow.intake_template import (
    ALL_RULE_OUTPUTS,
    CLOUDTRAIL_RULE_OUTPUT,
    OPTIONAL_RULE_OUTPUTS,
    QUEUE_OUTPUTS,
    RULE_OUTPUTS,
    TEMPLATE_NAME,
    event_patterns,
    rule_name,
)
from irflow.models.readiness import ReadinessScope
from irflow.models.settings import get_settings

TEMPLATE = TEMPLATE_NAME
REQUIRED_OUTPUTS = (*QUEUE_OUTPUTS, *RULE_OUTPUTS, CLOUDTRAIL_RULE_OUTPUT[0])
_WORKING = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
_QUEUE_GONE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_IAM_READ = ("cloudformation:DescribeStacks",)
_QUEUE_NAME = r"[\w-]{1,80}(?:\.fifo)?"
_QUEUE_URL = re.compile(
    r"https://(?:sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|(?P<legacy>[a-z0-9-]+)\.queue\.amazonaws\.com"
    rf"(?:\.cn)?|queue\.amazonaws\.com)/(?P<account>\d{{12}})/(?P<name>{_QUEUE_NAME})"
)


class Intake(NamedTuple):
    name: str
    status: str
    reason: str
    outputs: dict[str, str]
    trusted_topics: list[str]
    parameters: dict[str, str]


def deploy_line(scope: ReadinessScope) -> str:
    name = get_settings().intake_stack_name
    return (
        f"aws cloudformation deploy --template-file {TEMPLATE} --stack-name {quote(name)} "
        f"--capabilities CAPABILITY_NAMED_IAM --region {quote(scope.region)}"
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
        parameters=parameters,
    )


def _queue_key(url: str) -> tuple[str, ...]:
    """What names a queue, whichever of SQS's URL forms spells it: (region, account, name); else the URL itself."""
    found = _QUEUE_URL.fullmatch(url.rstrip("/"))
    if not found:
        return (url.rstrip("/"),)
    return (found["region"] or found["legacy"] or "us-east-1", found["account"], found["name"])


def _foreign_outputs(intake: Intake, scope: ReadinessScope) -> list[str]:
    """The outputs that do not name a queue or rule of this account and region."""
    account, partition = own_identity()["Account"], get_settings().aws_partition

    def arn(service: str, resource: str) -> re.Pattern[str]:
        return re.compile(f"arn:{re.escape(partition)}:{service}:{re.escape(scope.region)}:{account}:{resource}")

    queue, rule = arn("sqs", _QUEUE_NAME), arn("events", r"rule/(?:[\w./-]{1,256}/)?[\w.-]{1,64}")
    patterns = {"FindingsQueueArn": queue, "DeadLetterQueueArn": queue, **dict.fromkeys(ALL_RULE_OUTPUTS, rule)}
    foreign = [
        output
        for output, pattern in patterns.items()
        if output in intake.outputs and not pattern.fullmatch(intake.outputs[output])
    ]
    for url, arn_output in (("FindingsQueueUrl", "FindingsQueueArn"), ("DeadLetterQueueUrl", "DeadLetterQueueArn")):
        if url in intake.outputs:
            key = _queue_key(intake.outputs[url])
            named = intake.outputs.get(arn_output, "").rsplit(":", 1)[-1]
            if key != (scope.region, account, named):
                foreign.append(url)
    return sorted(foreign)


def _not_the_template(intake: Intake, scope: ReadinessScope, keys: tuple[str, ...]) -> Verdict | None:
    missing = [key for key in keys if key not in intake.outputs]
    if missing:
        return failed(
            f"stack {intake.name} ({intake.status}) has no output {', '.join(missing)}: it is not {TEMPLATE} as "
            "this irflow knows it",
            deploy_line(scope),
            problems=[f"{key}: missing" for key in missing],
        )
    foreign = _foreign_outputs(intake, scope)
    if foreign:
        named = "; ".join(f"{output} {intake.outputs[output]}" for output in foreign)
        return failed(
            f"stack {intake.name}'s outputs name what is not a queue or rule of account {own_identity()['Account']} "
            f"in {scope.region}: {named}: it is not {TEMPLATE} as deployed here",
            deploy_line(scope),
            problems=[f"{output}: not of this account and region" for output in foreign],
        )
    return None


def _unheard(intake: Intake) -> str | None:
    """Why the listener does not read the stack's findings queue (not in IRFLOW_QUEUE_URLS); None when it does."""
    queues = get_settings().queue_urls
    url = intake.outputs["FindingsQueueUrl"]
    if not queues:
        return f"IRFLOW_QUEUE_URLS is not set here: nothing says the listener reads {url}"
    if _queue_key(url) not in {_queue_key(q) for q in queues}:
        return f"the listener reads {', '.join(queues)} (IRFLOW_QUEUE_URLS), not stack {intake.name}'s queue {url}"
    return None


def _with_outputs(scope: ReadinessScope, *keys: str) -> Intake | Verdict:
    """The stack, when it has `keys` and they name this account's and region's queue and rules, its findings queue
    being the listener's; else the verdict (a queue nobody reads is not looked at: `intake.stack` fails)."""
    intake = read_intake(scope)
    if isinstance(intake, Verdict):
        return intake
    wrong = _not_the_template(intake, scope, keys)
    if wrong is not None:
        return wrong
    unheard = _unheard(intake) if "FindingsQueueUrl" in intake.outputs else None
    if unheard:
        return unknown(f"{unheard}: not checked (see intake.stack)")
    return intake


@readiness_check("intake.stack", f"The findings intake stack ({TEMPLATE}) is deployed", *_IAM_READ, reach="security")
def intake_stack(scope: ReadinessScope) -> Verdict:
    """The stack exists, is in a working state, has every output the template declares (each naming a queue or rule
    of this account and region), and its findings queue is one the listener reads."""
    intake = read_intake(scope)
    if isinstance(intake, Verdict):
        return intake
    name, where = quote(intake.name), quote(scope.region)
    if intake.status.endswith("_IN_PROGRESS"):
        return unknown(f"stack {intake.name} is being changed ({intake.status})")
    if intake.status not in _WORKING:
        reason = f": {intake.reason}" if intake.reason else ""
        return failed(
            f"stack {intake.name} is {intake.status}{reason}",
            f"see `aws cloudformation describe-stack-events --stack-name {name} --region {where}`; "
            f"a stack that never completed is deleted (aws cloudformation delete-stack --stack-name {name} --region "
            f"{where}) and deployed again: {deploy_line(scope)}",
        )
    wrong = _not_the_template(intake, scope, REQUIRED_OUTPUTS)
    if wrong is not None:
        return wrong
    unheard = _unheard(intake)
    if unheard:
        return failed(
            f"{unheard}: the checks of the intake would vouch for a queue no finding is read from",
            "set IRFLOW_INTAKE_STACK_NAME to the stack whose findings queue the listener reads, and IRFLOW_QUEUE_URLS "
            f"here as the listener has it (a region without that stack: {deploy_line(scope)})",
        )
    return passed(f"stack {intake.name} is {intake.status}; findings queue {intake.outputs['FindingsQueueUrl']}")


def _shown(pattern: Any) -> str:
    text = json.dumps(pattern, sort_keys=True)
    return text if len(text) <= 200 else text[:200] + "…"


def rule_problems(
    scope: ReadinessScope, arn: str, logical_id: str, queue_arn: str, pattern: dict[str, Any] | None
) -> list[tuple[str, str, str]]:
    """What is wrong with one of the stack's rules, each as (evidence, fix, problem item): gone, not ENABLED, an
    EventPattern other than the template's (`pattern`; None: not compared), the findings queue not a target."""
    bus, name = rule_name(arn)
    events = client("events", scope.region)
    where = f"--region {quote(scope.region)}" + (f" --event-bus-name {quote(bus)}" if bus != "default" else "")
    quoted, queue = quote(name), quote(f"Id=findings-queue,Arn={queue_arn}")
    put_rule = f"aws events put-rule --name {quoted} --event-pattern " + (
        quote(json.dumps(pattern)) if pattern is not None else f"file://pattern.json (the EventPattern of {logical_id})"
    )
    put_targets = f"aws events put-targets --rule {quoted} --targets {queue} {where}"
    try:
        rule = events.describe_rule(Name=name, EventBusName=bus)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return [
            (
                f"rule {name} is gone",
                f"recreate it as {TEMPLATE} declares {logical_id} (a rule deleted outside CloudFormation is not "
                f"recreated by a deploy): {put_rule} {where}, then {put_targets}",
                f"{name}: gone",
            )
        ]
    found = []
    if rule.get("State") != "ENABLED":
        found.append(
            (
                f"rule {name} is {rule.get('State')}",
                f"aws events enable-rule --name {quoted} {where}",
                f"{name}: disabled",
            )
        )
    deployed = json.loads(rule["EventPattern"]) if rule.get("EventPattern") else None
    if pattern is not None and deployed != pattern:
        found.append(
            (
                f"rule {name} matches {_shown(deployed)}, not the EventPattern {TEMPLATE} declares for {logical_id} "
                f"({_shown(pattern)})",
                f"{put_rule} {where}",
                f"{name}: event pattern changed",
            )
        )
    targets = events.list_targets_by_rule(Rule=name, EventBusName=bus).get("Targets", [])
    if not any(target.get("Arn") == queue_arn for target in targets):
        aimed = ", ".join(t.get("Arn", "?") for t in targets) or "nothing"
        found.append((f"rule {name} targets {aimed}, not the findings queue", put_targets, f"{name}: not targeting"))
    return found


def _rules_verdict(scope: ReadinessScope, intake: Intake, rules: dict[str, str]) -> Verdict:
    queue_arn = intake.outputs["FindingsQueueArn"]
    patterns = event_patterns(intake.parameters)
    checked = {output: logical_id for output, logical_id in rules.items() if output in intake.outputs}
    problems = [
        problem
        for output, logical_id in checked.items()
        for problem in rule_problems(
            scope, intake.outputs[output], logical_id, queue_arn, None if patterns is None else patterns[logical_id]
        )
    ]
    names = ", ".join(rule_name(intake.outputs[o])[1] for o in checked)
    if problems:
        return failed(
            "; ".join(e for e, _, _ in problems),
            "; ".join(f for _, f, _ in problems),
            problems=[p for *_, p in problems],
        )
    if patterns is None:
        return unknown(
            f"{names}: ENABLED, each targeting {queue_arn}; their event patterns not compared: {TEMPLATE} is not "
            "beside irflow's code or in the working directory"
        )
    return passed(f"{names}: ENABLED, each with its event pattern from {TEMPLATE} and targeting {queue_arn}")


_READ_RULES = ("events:DescribeRule", "events:ListTargetsByRule")


@readiness_check(
    "intake.rules",
    "The intake's EventBridge rules are enabled, match what the template says and target the findings queue",
    *_IAM_READ,
    *_READ_RULES,
    reach="security",
)
def intake_rules(scope: ReadinessScope) -> Verdict:
    """The GuardDuty and Security Hub rules (and the CloudTrail log files rule, where the stack has it): each
    exists, is ENABLED, has the template's EventPattern, and has the findings queue as a target."""
    intake = _with_outputs(scope, "FindingsQueueArn", *RULE_OUTPUTS)
    if isinstance(intake, Verdict):
        return intake
    return _rules_verdict(scope, intake, {**RULE_OUTPUTS, **OPTIONAL_RULE_OUTPUTS})


@readiness_check(
    "cloudtrail.eventbridge",
    "CloudTrail API calls reach the findings queue through EventBridge",
    *_IAM_READ,
    *_READ_RULES,
    reach="security",
)
def cloudtrail_eventbridge(scope: ReadinessScope) -> Verdict:
    """The intake's CloudTrail API calls rule exists, is ENABLED, has the template's EventPattern and targets the
    findings queue: irflow's detection rules see calls seconds after they are made."""
    output, logical_id = CLOUDTRAIL_RULE_OUTPUT
    intake = _with_outputs(scope, "FindingsQueueArn", output)
    if isinstance(intake, Verdict):
        return intake
    return _rules_verdict(scope, intake, {output: logical_id})


def _queue(scope: ReadinessScope, intake: Intake, url: str, *names: str) -> dict[str, str] | Verdict:
    """The queue's attributes `names`, or the verdict that the queue is gone."""
    try:
        return client("sqs", scope.region).get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]
    except ClientError as error:
        if error_code(error) not in _QUEUE_GONE:
            raise
    return failed(
        f"queue {url} of stack {intake.name} is gone",
        f"a queue deleted outside CloudFormation is not recreated by a deploy: aws cloudformation delete-stack "
        f"--stack-name {quote(intake.name)} --region {quote(scope.region)}, then {deploy_line(scope)} (the queue's URL "
        "stays the same: its name comes from NamePrefix)",
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
    intake = _with_outputs(scope, *QUEUE_OUTPUTS)
    if isinstance(intake, Verdict):
        return intake
    url, dead_letters = intake.outputs["FindingsQueueUrl"], intake.outputs["DeadLetterQueueArn"]
    attributes = _queue(scope, intake, url, "RedrivePolicy")
    if isinstance(attributes, Verdict):
        return attributes
    redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    target, receives = redrive.get("deadLetterTargetArn", ""), redrive.get("maxReceiveCount", 25)
    if target != dead_letters:
        policy = json.dumps({"deadLetterTargetArn": dead_letters, "maxReceiveCount": str(receives)})
        found = f"redrives to {target}" if target else "has no redrive policy"
        return failed(
            f"findings queue {url} {found}, not to {dead_letters}: a finding the listener keeps failing on is "
            "received again and again, then lost when it expires",
            f"aws sqs set-queue-attributes --queue-url {quote(url)} --region {quote(scope.region)} --attributes "
            f"{quote(json.dumps({'RedrivePolicy': policy}))}",
        )
    dead_letter_queue = _queue(scope, intake, intake.outputs["DeadLetterQueueUrl"], "QueueArn")
    if isinstance(dead_letter_queue, Verdict):
        return dead_letter_queue
    return passed(f"findings queue {url} redrives to {dead_letters} after {receives} receives")


_EVERYONE = "*"
_SENDING_SERVICES = {"events.amazonaws.com", "sns.amazonaws.com"}


def _reaches(principal: Any, services: bool) -> bool:
    """The statement's Principal is everyone (or, with `services`, names EventBridge or SNS)."""
    if principal == _EVERYONE:
        return True
    if not isinstance(principal, dict):
        return False
    if _EVERYONE in as_list(principal.get("AWS", [])):
        return True
    return services and bool(_SENDING_SERVICES & set(as_list(principal.get("Service", []))))


def sender_exemptions(policy: dict, queue_arn: str, services: bool = False) -> list[list[str]]:
    """For each statement denying sqs:SendMessage on the queue to everyone (with `services`, or to EventBridge or
    SNS), the sources (aws:SourceArn) it lets through: none for a Deny without a condition. A Deny whose condition
    tests anything else is left out (it may not deny what it seems to)."""
    found = []
    for statement in statements(policy):
        if statement.get("Effect") != "Deny" or not _reaches(statement.get("Principal"), services):
            continue
        if not applies(statement, "sqs:SendMessage", queue_arn):
            continue
        condition = statement.get("Condition", {})
        if any(op not in ("ArnNotEquals", "ArnNotLike") for op in condition):
            continue
        if any(key.lower() != "aws:sourcearn" for tests in condition.values() for key in tests):
            continue
        found.append([str(v) for tests in condition.values() for values in tests.values() for v in as_list(values)])
    return found


def _let_through(denials: list[list[str]], source: str) -> bool:
    """No Deny of `denials` applies to a send from `source` (ArnNot* compare with globs, as ArnLike does)."""
    return all(matches(exempt, source, False) for exempt in denials)


@readiness_check(
    "intake.queue_policy",
    "The findings queue's policy lets only the intake's rules and trusted topics send",
    *_IAM_READ,
    "sqs:GetQueueAttributes",
    reach="security",
)
def intake_queue_policy(scope: ReadinessScope) -> Verdict:
    """As the template's FindingsQueuePolicy: a Deny of sqs:SendMessage to everyone unless aws:SourceArn is one of
    the stack's rules or the stack's TrustedTopicArns. The listener believes what is on the queue; and a Deny that
    spares fewer sources than the stack's keeps their findings out."""
    intake = _with_outputs(scope, "FindingsQueueUrl", "FindingsQueueArn")
    if isinstance(intake, Verdict):
        return intake
    url, queue_arn = intake.outputs["FindingsQueueUrl"], intake.outputs["FindingsQueueArn"]
    attributes = _queue(scope, intake, url, "Policy")
    if isinstance(attributes, Verdict):
        return attributes
    policy = json.loads(attributes.get("Policy") or "{}")
    sources = sorted({v for k, v in intake.outputs.items() if k.endswith("RuleArn")} | set(intake.trusted_topics))
    fix = (
        f"restore the policy {TEMPLATE} declares (FindingsQueuePolicy: its NobodyElseMaySend statement denies "
        f"sqs:SendMessage unless aws:SourceArn is one of the stack's rules or trusted topics): aws sqs "
        f"set-queue-attributes --queue-url {quote(url)} --region {quote(scope.region)} --attributes "
        "file://queue-policy.json"
    )
    denials = sender_exemptions(policy, queue_arn)
    if not denials:
        return failed(f"no statement of {url}'s policy denies other senders: anyone allowed to send can inject", fix)
    blocking = sender_exemptions(policy, queue_arn, services=True)
    denied = [source for source in sources if not _let_through(blocking, source)]
    extra = sorted({v for exempt in denials for v in exempt if v not in sources and _let_through(denials, v)})
    if denied or extra:
        found = [f"lets through {', '.join(extra)}, which the stack does not name"] if extra else []
        if denied:
            found.append(f"denies the stack's own {', '.join(denied)}: what they send never reaches the queue")
        return failed(
            f"the queue policy's Deny {'; and '.join(found)}",
            fix,
            problems=[f"{v}: may send" for v in extra] + [f"{s}: denied" for s in denied],
        )
    return passed(f"{url}: sqs:SendMessage denied to all but the stack's {len(sources)} source(s)")
