"""Notifications: each channel's message is JSON, delivered to that channel's SNS topic (moto), with the account's
alias, links to the resource, the finding and the incident, and the same in lines a person reads."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import quote

import boto3
import pytest

from activities.notify import forget_aliases, publish_notification
from irflow.devstack.demo import sample_finding
from irflow.models.asff import parse_asff
from irflow.models.finding import parse_guardduty
from irflow.models.incident import NotifyInput
from irflow.models.settings import get_settings
from irflow.models.source_findings import LinkedNotifyInput, NotificationSubject, console_resource, source_finding
from tests.activities.evidence_support import INCIDENT_ID
from tests.activities.test_source_findings import asff_record
from tests.support import notifications


@pytest.mark.parametrize("channel, topic_attr", [("team", "notify_topic_arn"), ("escalation", "escalation_topic_arn")])
def test_publish_notification_delivers_json_to_the_channel_topic(workload, channel, topic_attr):
    request = NotifyInput(
        incident_id=INCIDENT_ID, channel=channel, subject="Instance contained", body={"phase": "containment"}
    )
    result = publish_notification(request)
    assert result.changed is True
    [message] = notifications(workload)
    assert message["topic"] == getattr(workload, topic_attr)
    assert message["subject"] == "Instance contained"
    assert message["incident_id"] == INCIDENT_ID and message["phase"] == "containment"


# --- the account, the links, and the lines a person reads ---

WORKFLOW_ID = "ec2-123456789012-us-east-1-i-0123456789abcdef0"
REGION, INSTANCE = "us-east-1", "i-0123456789abcdef0"


@pytest.fixture(autouse=True)
def no_remembered_aliases():
    forget_aliases()  # moto's accounts start afresh in each test; the worker's cache would not know
    yield
    forget_aliases()


@pytest.fixture
def inbox(aws, monkeypatch) -> SimpleNamespace:
    """The team's SNS topic delivering to an SQS queue, as the demo has it, without the rest of the demo account."""
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="irflow-notify")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="irflow-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("IRFLOW_NOTIFY_TOPIC_ARN", topic)
    get_settings.cache_clear()
    account = boto3.client("sts").get_caller_identity()["Account"]
    return SimpleNamespace(region=REGION, account_id=account, notifications_queue_url=queue_url, instance_id=INSTANCE)


def _subject(finding, namespace: str = "irflow-prod") -> NotificationSubject:
    """What the incident's Notifier says its messages are about."""
    return NotificationSubject(
        account_id=finding.account_id,
        region=finding.region,
        partition=finding.partition,
        resource=console_resource(finding),
        finding=source_finding(finding),
        workflow_id=WORKFLOW_ID,
        namespace=namespace,
    )


def _publish(inbox, finding, **about) -> dict:
    body = {"phase": "containment", "finding_type": finding.type, "message": "contained"}
    request = LinkedNotifyInput(
        incident_id=INCIDENT_ID, subject="irflow: contained", body=body, about=_subject(finding, **about)
    )
    assert publish_notification(request).changed is True
    [message] = notifications(inbox)
    return message


def _instance_finding(inbox):
    return parse_guardduty(sample_finding(inbox.instance_id, inbox.account_id, inbox.region)).finding


def test_a_message_names_the_account_by_its_alias_and_carries_its_links_in_json_and_in_lines(inbox):
    boto3.client("iam").create_account_alias(AccountAlias="prod-web")
    finding = _instance_finding(inbox)
    message = _publish(inbox, finding)
    assert message["account_alias"] == "prod-web" and message["account_id"] == inbox.account_id
    links = message["links"]
    assert links == {
        "resource": "https://console.aws.amazon.com/ec2/home?region=us-east-1"
        f"#InstanceDetails:instanceId={inbox.instance_id}",
        "finding": "https://console.aws.amazon.com/guardduty/home?region=us-east-1"
        f"#/findings?macros=current&fId={finding.id}",
        "incident": f"http://localhost:8233/namespaces/irflow-prod/workflows/{WORKFLOW_ID}",
    }
    lines = message["text"].splitlines()
    assert lines[0] == "irflow: contained" and "contained" in lines
    assert f"Account: prod-web ({inbox.account_id}), us-east-1" in lines
    assert f"Resource: EC2 instance {inbox.instance_id}: {links['resource']}" in lines
    assert f"Finding: {finding.type} (GuardDuty): {links['finding']}" in lines
    assert f"Temporal UI: {links['incident']}" in lines
    assert message["phase"] == "containment" and message["incident_id"] == INCIDENT_ID, "the fields scripts read"


def test_an_account_without_an_alias_is_named_by_its_id(inbox):
    message = _publish(inbox, _instance_finding(inbox))
    assert message["account_alias"] == inbox.account_id
    assert f"Account: {inbox.account_id}, us-east-1" in message["text"].splitlines()


def test_the_alias_is_asked_once_per_account_in_the_worker(inbox):
    iam = boto3.client("iam")
    iam.create_account_alias(AccountAlias="prod-web")
    finding = _instance_finding(inbox)
    assert _publish(inbox, finding)["account_alias"] == "prod-web"
    iam.delete_account_alias(AccountAlias="prod-web")
    iam.create_account_alias(AccountAlias="renamed")
    assert _publish(inbox, finding)["account_alias"] == "prod-web", "remembered, not asked again"
    forget_aliases()
    assert _publish(inbox, finding)["account_alias"] == "renamed"


def _resource(kind: str, partition: str, region: str) -> dict:
    account = "123456789012"
    return {
        "instance": {"Type": "AwsEc2Instance", "Id": f"arn:{partition}:ec2:{region}:{account}:instance/i-0a1b2c3d4e"},
        "access-key": {
            "Type": "AwsIamAccessKey",
            "Id": "AWS::IAM::AccessKey:AKIAIOSFODNN7EXAMPLE",
            "Details": {"AwsIamAccessKey": {"PrincipalName": "alice smith", "PrincipalType": "IAMUser"}},
        },
        "user": {"Type": "AwsIamUser", "Id": f"arn:{partition}:iam::{account}:user/ops/bob"},
        "role": {"Type": "AwsIamRole", "Id": f"arn:{partition}:iam::{account}:role/ops/web-role"},
        "bucket": {"Type": "AwsS3Bucket", "Id": f"arn:{partition}:s3:::demo-bucket"},
        "function": {"Type": "AwsLambdaFunction", "Id": f"arn:{partition}:lambda:{region}:{account}:function:orders:3"},
        "db-instance": {"Type": "AwsRdsDbInstance", "Id": f"arn:{partition}:rds:{region}:{account}:db:orders-db"},
    }[kind] | {"Partition": partition}


RESOURCE_PAGES = {
    "instance": "/ec2/home?region={r}#InstanceDetails:instanceId=i-0a1b2c3d4e",
    "access-key": "/iam/home?region={r}#/users/details/alice%20smith?section=security_credentials",
    "user": "/iam/home?region={r}#/users/details/bob",
    "role": "/iam/home?region={r}#/roles/details/web-role",
    "bucket": "/s3/buckets/demo-bucket?region={r}",
    "function": "/lambda/home?region={r}#/functions/orders",
    "db-instance": "/rds/home?region={r}#database:id=orders-db;is-cluster=false",
}
PARTITIONS = [
    ("aws", "eu-west-1", "https://console.aws.amazon.com"),
    ("aws-us-gov", "us-gov-west-1", "https://console.amazonaws-us-gov.com"),
    ("aws-cn", "cn-north-1", "https://console.amazonaws.cn"),
]


@pytest.mark.parametrize("partition, region, console", PARTITIONS)
@pytest.mark.parametrize("kind", list(RESOURCE_PAGES))
def test_each_resource_kind_links_to_its_console_page_in_its_partition_and_region(
    inbox, kind, partition, region, console
):
    finding_id = f"arn:{partition}:securityhub:{region}:123456789012:finding/x-1"
    record = asff_record(
        finding_id,
        product_arn=f"arn:{partition}:securityhub:{region}::product/aws/macie",
        resource=_resource(kind, partition, region),
        account=inbox.account_id,
        region=region,
    )
    finding = parse_asff(record).finding
    message = _publish(inbox, finding)
    assert message["links"]["resource"] == console + RESOURCE_PAGES[kind].format(r=region)
    search = "Id%3D%255Coperator%255C%253AEQUALS%255C%253A" + quote(quote(finding_id, safe=""), safe="")
    assert message["links"]["finding"] == f"{console}/securityhub/home?region={region}#/findings?search={search}"


def test_the_temporal_ui_link_follows_the_settings_and_encodes_the_workflow_id(inbox, monkeypatch):
    monkeypatch.setenv("IRFLOW_TEMPORAL_UI_URL", "https://temporal.example.com/ui/")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ir prod")
    get_settings.cache_clear()
    finding = _instance_finding(inbox)
    about = _subject(finding, namespace="").model_copy(update={"workflow_id": "s3-1-us-east-1-a/b c"})
    request = LinkedNotifyInput(incident_id=INCIDENT_ID, subject="s", body={"message": "m"}, about=about)
    publish_notification(request)
    [message] = notifications(inbox)
    assert (
        message["links"]["incident"]
        == "https://temporal.example.com/ui/namespaces/ir%20prod/workflows/s3-1-us-east-1-a%2Fb%20c"
    )


def test_a_finding_of_irflow_s_own_has_no_finding_link(inbox):
    finding = _instance_finding(inbox)
    about = _subject(finding).model_copy(update={"finding": None, "resource": None})
    request = LinkedNotifyInput(incident_id=INCIDENT_ID, subject="s", body={"message": "m"}, about=about)
    publish_notification(request)
    [message] = notifications(inbox)
    assert message["links"]["resource"] is None and message["links"]["finding"] is None
    assert not any(line.startswith(("Resource:", "Finding:")) for line in message["text"].splitlines())
