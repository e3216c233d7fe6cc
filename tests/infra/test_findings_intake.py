"""infra/findings-intake.yaml: valid CloudFormation, wired the way the finding listener relies on, and
delivering real GuardDuty and Security Hub events to the findings queue once deployed (in moto)."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from irflow.devstack.demo import sample_finding
from irflow.devstack.intake_stack import (
    TEMPLATE,
    PublishError,
    deploy_intake_stack,
    load_template,
    parameter_values,
    publish_findings,
    resolve_event_pattern,
    securityhub_event,
)
from tests.support import CORPORA

# moto's CloudFormation skips AWS::SQS::QueuePolicy (deploy_intake_stack sets the policy itself).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.+QueuePolicy:UserWarning")

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
MOTO_ACCOUNT = "123456789012"
INSTANCE = "i-0123456789abcdef0"

GUARDDUTY = ("aws.guardduty", "GuardDuty Finding")
SECURITYHUB_IMPORTED = ("aws.securityhub", "Security Hub Findings - Imported")
SECURITYHUB_CUSTOM_ACTION = ("aws.securityhub", "Security Hub Findings - Custom Action")
CLOUDTRAIL_API_CALLS = ('{"prefix": "aws."}', "AWS API Call via CloudTrail")
CLOUDTRAIL_SIGN_INS = ('{"prefix": "aws."}', "AWS Console Sign In via CloudTrail")
S3_OBJECT_CREATED = ("aws.s3", "Object Created")
QUEUE_ARN = {"Fn::GetAtt": ["FindingsQueue", "Arn"]}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == resource_type}


def corpus(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CORPORA / name).read_text().splitlines() if line.strip()]


def asff_findings() -> list[dict[str, Any]]:
    return [row["finding"] for row in corpus("securityhub/asff_findings.jsonl")]


def ec2_asff_finding() -> dict[str, Any]:
    return next(
        finding
        for finding in asff_findings()
        if any(resource.get("Type") == "AwsEc2Instance" for resource in finding.get("Resources", []))
    )


def custom_action_event() -> dict[str, Any]:
    return next(
        row["eventbridge_event"]
        for row in corpus("securityhub/asff_findings.jsonl")
        if row["container"] == "EventBridge event" and row["eventbridge_detail_type"] == SECURITYHUB_CUSTOM_ACTION[1]
    )


def drain(queue_url: str, region: str = "us-east-1") -> list[dict[str, Any]]:
    """Every message body in the queue, each deleted as it is read."""
    sqs = boto3.client("sqs", region_name=region)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(message["Body"]) for message in messages]
        deleted = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)],
        )
        assert not deleted.get("Failed"), deleted["Failed"]
    return bodies


# --- the template as written --------------------------------------------------------------------


def test_cfn_lint_passes():
    result = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_rules_forward_guardduty_and_both_security_hub_detail_types_to_the_findings_queue(template):
    rules = resources_of_type(template, "AWS::Events::Rule")
    parameters = parameter_values(template)
    forwarded = []
    for name, rule in rules.items():
        properties = rule["Properties"]
        pattern = resolve_event_pattern(properties["EventPattern"], parameters)
        assert properties.get("EventBusName", "default") == "default", name
        assert properties.get("State", "ENABLED") == "ENABLED", name
        assert [target["Arn"] for target in properties["Targets"]] == [QUEUE_ARN], name
        forwarded += [
            (source if isinstance(source, str) else json.dumps(source), kind)
            for source in pattern["source"]
            for kind in pattern["detail-type"]
        ]
    assert sorted(forwarded) == sorted(
        [
            GUARDDUTY,
            SECURITYHUB_IMPORTED,
            SECURITYHUB_CUSTOM_ACTION,
            CLOUDTRAIL_API_CALLS,
            CLOUDTRAIL_SIGN_INS,
            S3_OBJECT_CREATED,
        ]
    )


def test_guardduty_severity_filter_accepts_every_finding_by_default(template):
    (guardduty_rule,) = (
        rule
        for rule in resources_of_type(template, "AWS::Events::Rule").values()
        if "aws.guardduty" in json.dumps(rule["Properties"]["EventPattern"])
    )
    pattern = guardduty_rule["Properties"]["EventPattern"]
    assert re.search(r'"numeric":\s*\[">=",\s*\$\{GuardDutyMinimumSeverity\}\]', pattern["Fn::Sub"])
    minimum = template["Parameters"]["GuardDutyMinimumSeverity"]
    assert minimum["Type"] == "Number" and minimum["Default"] == 0
    resolved = resolve_event_pattern(pattern, parameter_values(template))
    assert resolved["detail"]["severity"] == [{"numeric": [">=", 0]}]
    severities = [row["event_eventbridge"]["detail"]["severity"] for row in corpus("guardduty/findings.jsonl")]
    assert all(isinstance(severity, int | float) and severity >= 0 for severity in severities)


def _rule_arns(template: dict[str, Any]) -> list[Any]:
    """Every rule's ARN, a conditional rule's under its own condition."""
    return sorted(
        (
            {"Fn::If": [rule["Condition"], {"Fn::GetAtt": [name, "Arn"]}, {"Ref": "AWS::NoValue"}]}
            if "Condition" in rule
            else {"Fn::GetAtt": [name, "Arn"]}
            for name, rule in resources_of_type(template, "AWS::Events::Rule").items()
        ),
        key=json.dumps,
    )


def _queue_policy_statements(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policies = resources_of_type(template, "AWS::SQS::QueuePolicy")
    assert len(policies) == 1
    (policy,) = policies.values()
    assert policy["Properties"]["Queues"] == [{"Ref": "FindingsQueue"}]
    statements = {}
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if set(statement) == {"Fn::If"}:  # a statement only under its condition
            condition, statement, otherwise = statement["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
            statement = {**statement, "_condition": condition}
        statements[statement["Sid"]] = statement
    return statements


def test_queue_policy_lets_only_eventbridge_send_and_only_for_the_intake_rules(template):
    statements = _queue_policy_statements(template)
    allows = [statement for statement in statements.values() if statement["Effect"] == "Allow"]
    assert {statement["Sid"] for statement in allows} == {"FindingRulesMaySend", "TrustedTopicsMaySend"}
    for statement in allows:
        assert not {"NotPrincipal", "NotAction", "NotResource"} & set(statement)
        assert statement["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])
        assert statement["Resource"] == QUEUE_ARN
        assert list(statement["Condition"]) == ["ArnEquals"]
        assert list(statement["Condition"]["ArnEquals"]) == ["aws:SourceArn"]
    rules = statements["FindingRulesMaySend"]
    assert rules["Principal"] == {"Service": "events.amazonaws.com"}
    # Every rule may send, and only while it exists: a conditional rule appears under its own condition.
    assert sorted(rules["Condition"]["ArnEquals"]["aws:SourceArn"], key=json.dumps) == _rule_arns(template)
    topics = statements["TrustedTopicsMaySend"]
    assert topics["_condition"] == "HasTrustedTopics"
    assert topics["Principal"] == {"Service": "sns.amazonaws.com"}
    assert topics["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "TrustedTopicArns"}


def test_queue_policy_denies_sending_to_everyone_but_the_rules_and_the_trusted_topics(template):
    parameter = template["Parameters"]["TrustedTopicArns"]
    assert parameter["Type"] == "CommaDelimitedList" and parameter["Default"] == ""
    deny = _queue_policy_statements(template)["NobodyElseMaySend"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"]) and deny["Resource"] == QUEUE_ARN
    condition, with_topics, without_topics = deny["Condition"]["Fn::If"]
    assert condition == "HasTrustedTopics"
    for condition in (with_topics, without_topics):
        assert sorted(condition["ArnNotEquals"]["aws:SourceArn"], key=json.dumps) == _rule_arns(template)
    assert with_topics["ArnNotLike"] == {"aws:SourceArn": {"Ref": "TrustedTopicArns"}}
    assert set(with_topics) == {"ArnNotEquals", "ArnNotLike"} and set(without_topics) == {"ArnNotEquals"}


def test_findings_queue_redrives_to_the_dead_letter_queue(template):
    parameters = template["Parameters"]
    queue = template["Resources"]["FindingsQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FindingsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "FindingsMaxReceiveCount"},
    }
    assert parameters["FindingsMaxReceiveCount"]["Default"] == 25
    assert queue["VisibilityTimeout"] == {"Ref": "FindingsVisibilityTimeout"}
    assert parameters["FindingsVisibilityTimeout"]["Default"] == 60
    assert queue["MessageRetentionPeriod"] == 4 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True

    dead_letters = template["Resources"]["FindingsDeadLetterQueue"]["Properties"]
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dead_letters["SqsManagedSseEnabled"] is True
    allow = dead_letters["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    # The allowed source is spelled out (a GetAtt would be a cycle): it must be the findings queue's ARN.
    (source,) = allow["sourceQueueArns"]
    assert (
        source["Fn::Sub"]
        == "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:" + queue["QueueName"]["Fn::Sub"]
    )


def test_the_listeners_share_one_encrypted_on_demand_table_that_forgets_and_only_its_items_are_theirs(template):
    [(name, table)] = resources_of_type(template, "AWS::DynamoDB::Table").items()
    assert {
        key: table["Properties"][key] for key in ("BillingMode", "SSESpecification", "TimeToLiveSpecification")
    } == {
        "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"SSEEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    }
    output = template["Outputs"]["StateTableName"]
    assert output == {
        **output,
        "Value": {"Ref": name},
        "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-StateTableName"}},
    }
    [policy] = resources_of_type(template, "AWS::IAM::ManagedPolicy").values()
    statements = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "Sid" in s]
    assert [s for s in statements if any(a.startswith("dynamodb:") for a in s["Action"])] == [
        {
            "Sid": "SharedListenerState",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            "Resource": {"Fn::GetAtt": [name, "Arn"]},
        }
    ]


def test_outputs_name_the_queues_and_rules(template):
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    assert outputs["FindingsQueueUrl"] == {"Ref": "FindingsQueue"}
    assert outputs["FindingsQueueArn"] == QUEUE_ARN
    assert outputs["DeadLetterQueueUrl"] == {"Ref": "FindingsDeadLetterQueue"}
    assert outputs["DeadLetterQueueArn"] == {"Fn::GetAtt": ["FindingsDeadLetterQueue", "Arn"]}
    rule_arns = [value for name, value in outputs.items() if name.endswith("RuleArn")]
    assert sorted(rule_arns, key=json.dumps) == sorted(
        ({"Fn::GetAtt": [name, "Arn"]} for name in resources_of_type(template, "AWS::Events::Rule")), key=json.dumps
    )


# --- deployed in moto ---------------------------------------------------------------------------


def test_deployed_findings_reach_the_findings_queue_as_eventbridge_delivers_them(aws):
    stack = deploy_intake_stack()
    guardduty = sample_finding(INSTANCE)
    imported = securityhub_event([ec2_asff_finding()])
    custom_action = custom_action_event()
    unrelated = {
        "source": "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        "detail": {"instance-id": INSTANCE, "state": "running"},
    }

    assert publish_findings([guardduty, imported, custom_action, unrelated]) == 4

    bodies = {body["detail-type"]: body for body in drain(stack.queue_url)}
    assert sorted(bodies) == sorted(kind for _, kind in (GUARDDUTY, SECURITYHUB_IMPORTED, SECURITYHUB_CUSTOM_ACTION))
    # EventBridge gives each event its own id and stamps the publisher's account; all else arrives as sent.
    for event in (guardduty, imported, custom_action):
        body = bodies[event["detail-type"]]
        assert body["id"] and body["id"] != event["id"]
        assert body["account"] == MOTO_ACCOUNT
        for key in ("version", "source", "detail-type", "time", "region", "resources", "detail"):
            assert body[key] == event[key], (event["detail-type"], key)
    # The sample finding is in moto's account: its body is the event itself.
    assert bodies[GUARDDUTY[1]] == {**guardduty, "id": bodies[GUARDDUTY[1]]["id"]}
    assert drain(stack.dead_letter_queue_url) == []


def test_deployed_queues_carry_the_template_settings(aws):
    stack = deploy_intake_stack(visibility_timeout=45, max_receive_count=7)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
    assert queue["VisibilityTimeout"] == "45"
    assert queue["MessageRetentionPeriod"] == str(4 * 24 * 3600)
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": stack.dead_letter_queue_arn, "maxReceiveCount": 7}
    policy = json.loads(queue["Policy"])
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert set(statements) == {"FindingRulesMaySend", "NobodyElseMaySend"}, "no topic given: no topic allowed"
    events = boto3.client("events", region_name="us-east-1")
    rule_arns = sorted(events.describe_rule(Name=name)["Arn"] for name in stack.rule_names)
    assert sorted(statements["FindingRulesMaySend"]["Condition"]["ArnEquals"]["aws:SourceArn"]) == rule_arns
    assert sorted(statements["NobodyElseMaySend"]["Condition"]["ArnNotEquals"]["aws:SourceArn"]) == rule_arns
    assert all(statement["Resource"] == stack.queue_arn for statement in statements.values())
    dead_letters = sqs.get_queue_attributes(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["All"])["Attributes"]
    assert dead_letters["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert dead_letters["QueueArn"] == stack.dead_letter_queue_arn


def test_every_corpus_finding_reaches_the_queue_with_the_default_filters(aws):
    stack = deploy_intake_stack()
    guardduty = [row["event_eventbridge"] for row in corpus("guardduty/findings.jsonl")]
    imported = [securityhub_event([finding]) for finding in asff_findings()]

    bodies = []
    # A few dozen at a time: moto's SQS slows down with the square of a queue's length. Each slice
    # is still more than the ten events PutEvents takes at once, so this also needs the batching.
    everything = guardduty + imported
    for start in range(0, len(everything), 40):
        assert publish_findings(everything[start : start + 40]) == len(everything[start : start + 40])
        bodies += drain(stack.queue_url)
    assert sorted(body["detail"].get("id", "") for body in bodies if body["source"] == "aws.guardduty") == sorted(
        event["detail"].get("id", "") for event in guardduty
    )
    assert sorted(
        body["detail"]["findings"][0]["Id"] for body in bodies if body["detail-type"] == SECURITYHUB_IMPORTED[1]
    ) == sorted(finding["Id"] for finding in asff_findings())


def test_guardduty_minimum_severity_drops_lower_findings(aws):
    stack = deploy_intake_stack(guardduty_minimum_severity=7)
    publish_findings([sample_finding(INSTANCE, severity=severity) for severity in (2.0, 5.0, 7.0, 8.9)])
    assert sorted(body["detail"]["severity"] for body in drain(stack.queue_url)) == [7.0, 8.9]


def test_a_finding_received_too_often_moves_to_the_dead_letter_queue(aws):
    stack = deploy_intake_stack(max_receive_count=2)
    finding = sample_finding(INSTANCE)
    publish_findings([finding])
    sqs = boto3.client("sqs", region_name="us-east-1")

    def receive(queue_url: str) -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=0).get("Messages", [])

    # Received and never deleted: the listener failing on the same message every time.
    assert len(receive(stack.queue_url)) == 1
    assert len(receive(stack.queue_url)) == 1
    assert receive(stack.queue_url) == []
    (dead,) = receive(stack.dead_letter_queue_url)
    assert json.loads(dead["Body"])["detail"] == finding["detail"]


def test_publish_findings_reports_refused_events(aws):
    deploy_intake_stack()
    good = sample_finding(INSTANCE)
    with pytest.raises(PublishError) as refused:
        publish_findings([good, {"source": "", "detail-type": "GuardDuty Finding", "detail": {}}, good])
    assert [index for index, _, _ in refused.value.failures] == [1]
    assert refused.value.published == 2
    with pytest.raises(ValueError, match="no detail-type"):
        publish_findings([{"source": "aws.guardduty", "detail": {}}])


def test_log_file_announcements_reach_the_queue_only_for_the_named_bucket_and_only_when_asked(aws):
    assert deploy_intake_stack(stack_name="no-log-files").cloudtrail_log_files_rule_name is None
    stack = deploy_intake_stack(stack_name="log-files", name_prefix="lf", cloudtrail_log_bucket="org-trail")
    assert stack.cloudtrail_log_files_rule_name == "lf-cloudtrail-log-files"

    def created(bucket: str, key: str) -> dict[str, Any]:
        return {
            "version": "0",
            "source": "aws.s3",
            "detail-type": "Object Created",
            "time": "2026-11-28T05:00:00Z",
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1200}},
        }

    log_key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/28/123456789012_CloudTrail_x.json.gz"
    publish_findings(
        [
            created("org-trail", log_key),
            created("someone-elses-bucket", log_key),  # another bucket
            created("org-trail", "AWSLogs/123456789012/notes.txt"),  # not a log file
        ]
    )
    [delivered] = drain(stack.queue_url)
    assert delivered["detail"]["bucket"]["name"] == "org-trail" and delivered["detail"]["object"]["key"] == log_key
    policy = json.loads(
        boto3.client("sqs").get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["Policy"])["Attributes"][
            "Policy"
        ]
    )
    allowed = policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert any(arn.endswith("rule/lf-cloudtrail-log-files") for arn in allowed) and len(allowed) == 5


def _listener_policy(stack_name: str) -> dict[str, Any]:
    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]
    arn = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ListenerPolicyArn")
    iam = boto3.client("iam")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def test_the_listener_policy_allows_its_queues_and_only_the_log_bucket_it_was_given(aws):
    plain = deploy_intake_stack(stack_name="plain", name_prefix="plain")
    statements = {s["Sid"]: s for s in _listener_policy("plain")["Statement"]}
    assert set(statements) == {"ReceiveFindings", "DeadLetterWithTheReason", "SharedListenerState"}
    assert statements["ReceiveFindings"]["Resource"] == plain.queue_arn
    assert "sqs:DeleteMessage" in statements["ReceiveFindings"]["Action"]
    assert statements["DeadLetterWithTheReason"]["Resource"] == plain.dead_letter_queue_arn
    assert statements["DeadLetterWithTheReason"]["Action"] == ["sqs:GetQueueUrl", "sqs:SendMessage"]
    dynamodb = boto3.client("dynamodb")
    assert (
        statements["SharedListenerState"]["Resource"]
        == dynamodb.describe_table(TableName="plain-listener-state")["Table"]["TableArn"]
    )
    ttl = dynamodb.describe_time_to_live(TableName=plain.state_table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}, "moto applies the template's TTL"

    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    deploy_intake_stack(
        stack_name="logs", name_prefix="logs", cloudtrail_log_bucket="org-trail", cloudtrail_log_kms_key_arn=key
    )
    statements = {s["Sid"]: s for s in _listener_policy("logs")["Statement"]}
    assert statements["ReadCloudTrailLogFiles"]["Resource"] == "arn:aws:s3:::org-trail/*"
    assert statements["ReadCloudTrailLogFiles"]["Action"] == "s3:GetObject"
    assert statements["DecryptCloudTrailLogFiles"]["Resource"] == key
    assert statements["DecryptCloudTrailLogFiles"]["Condition"] == {
        "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}
    }


def _may_send(policy: dict[str, Any], service: str | None, source_arn: str | None) -> bool:
    """IAM's verdict on sqs:SendMessage under `policy` alone, for the Arn* conditions it uses: an explicit
    Deny wins; a negated operator on a key the request lacks holds (a direct send carries no aws:SourceArn).
    `service` None: an IAM principal of the account, which its own identity policy lets send."""

    def holds(condition: dict[str, Any]) -> bool:
        for operator, keys in condition.items():
            for key, wanted in keys.items():
                assert key == "aws:SourceArn", key
                wanted = wanted if isinstance(wanted, list) else [wanted]
                matched = source_arn is not None and any(
                    fnmatch.fnmatchcase(source_arn, w) if operator.endswith("Like") else source_arn == w for w in wanted
                )
                if operator in ("ArnNotEquals", "ArnNotLike"):
                    if matched:
                        return False
                elif not matched:
                    return False
        return True

    def applies(statement: dict[str, Any]) -> bool:
        principal = statement["Principal"]
        named = principal == "*" or (service is not None and principal.get("Service") == service)
        return named and holds(statement.get("Condition", {}))

    statements = [s for s in policy["Statement"] if "sqs:SendMessage" in json.dumps(s["Action"])]
    if any(s["Effect"] == "Deny" and applies(s) for s in statements):
        return False
    return service is None or any(s["Effect"] == "Allow" and applies(s) for s in statements)


def test_deployed_queue_policy_lets_only_the_rules_and_the_trusted_topics_send(aws):
    topic = "arn:aws:sns:us-east-1:123456789012:guardduty-findings"
    stack = deploy_intake_stack(stack_name="topics", name_prefix="topics", trusted_topic_arns=[topic])
    sqs = boto3.client("sqs", region_name="us-east-1")
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    events = boto3.client("events", region_name="us-east-1")
    for rule in stack.rule_names:
        assert _may_send(policy, "events.amazonaws.com", events.describe_rule(Name=rule)["Arn"]), rule
    assert _may_send(policy, "sns.amazonaws.com", topic)
    assert not _may_send(policy, None, None), "an IAM user or role of the account, whatever its own policy says"
    assert not _may_send(policy, "events.amazonaws.com", "arn:aws:events:us-east-1:123456789012:rule/someone-elses")
    assert not _may_send(policy, "sns.amazonaws.com", "arn:aws:sns:us-east-1:123456789012:anyone-may-publish")
    assert not _may_send(policy, "events.amazonaws.com", topic), "a topic's ARN only from SNS"

    without = deploy_intake_stack(stack_name="no-topics", name_prefix="notopics")
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=without.queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert not _may_send(policy, "sns.amazonaws.com", topic) and not _may_send(policy, None, None)
    assert _may_send(policy, "events.amazonaws.com", events.describe_rule(Name=without.guardduty_rule_name)["Arn"])
