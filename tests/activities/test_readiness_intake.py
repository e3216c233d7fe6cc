"""Readiness of the findings intake (moto): what the checks expect is what infra/findings-intake.yaml declares,
and each way the deployed stack drifts from it (gone, a rule disabled or aimed elsewhere, no redrive, a queue
policy letting others send) fails its check with the line that mends it."""

from __future__ import annotations

import json

import boto3
import pytest

from activities.readiness_intake import (
    _CLOUDTRAIL_RULE_OUTPUT,
    _OPTIONAL_RULE_OUTPUTS,
    _QUEUE_OUTPUTS,
    _RULE_OUTPUTS,
    cloudtrail_eventbridge,
    intake_queue_policy,
    intake_redrive,
    intake_rules,
    intake_stack,
    sender_exemptions,
)
from irflow.devstack.intake_stack import IntakeStack, deploy_intake_stack, load_template
from irflow.models.readiness import CheckStatus, ReadinessScope
from irflow.models.settings import get_settings

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
    monkeypatch.setenv("IRFLOW_INTAKE_STACK_NAME", "irflow-intake")
    get_settings.cache_clear()


@pytest.fixture
def intake(aws, named) -> IntakeStack:
    return deploy_intake_stack(region=REGION, stack_name="irflow-intake")


def statuses() -> dict[str, CheckStatus]:
    return {check.check_id: check(SCOPE).status for check in INTAKE_CHECKS}


def test_the_checks_expect_what_the_template_declares():
    template = load_template()
    outputs = template["Outputs"]
    assert set(_QUEUE_OUTPUTS) <= set(outputs)
    rules = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}
    expected = {**_RULE_OUTPUTS, **_OPTIONAL_RULE_OUTPUTS, _CLOUDTRAIL_RULE_OUTPUT[0]: _CLOUDTRAIL_RULE_OUTPUT[1]}
    assert set(expected.values()) == rules, "every rule of the template is checked"
    for output, logical_id in expected.items():
        assert outputs[output]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    for output, logical_id in _OPTIONAL_RULE_OUTPUTS.items():
        assert "Condition" in outputs[output] and "Condition" in template["Resources"][logical_id]


def test_a_deployed_stack_passes_and_a_missing_one_fails_every_intake_check_with_the_deploy_line(aws, named):
    for check in INTAKE_CHECKS:
        result = check(SCOPE)
        assert result.status == CheckStatus.FAIL, check.check_id
        assert "no CloudFormation stack irflow-intake in us-east-1" in result.evidence
        assert result.fix == DEPLOY
    deploy_intake_stack(region=REGION, stack_name="irflow-intake")
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


def test_the_log_files_rule_is_checked_where_the_stack_has_it(aws, named):
    stack = deploy_intake_stack(region=REGION, stack_name="irflow-intake", cloudtrail_log_bucket="org-trail-logs")
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


def test_trusted_topics_of_the_stack_may_be_let_through(aws, named):
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="findings-relay")["TopicArn"]
    deploy_intake_stack(region=REGION, stack_name="irflow-intake", trusted_topic_arns=[topic])
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
