"""An alert becomes a finding the router sends to the right playbook, with the caller or resource it concerns."""

from __future__ import annotations

from irflow.detection.findings import alert_to_finding
from irflow.detection.rules import Alert
from irflow.intake.router import route
from irflow.models.finding import FindingSource, Severity

USER_EVENT = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": "arn:aws:iam::123456789012:user/ci",
        "accountId": "123456789012",
        "accessKeyId": "AKIAEXAMPLEKEY000001",
        "userName": "ci",
    },
    "eventTime": "2026-11-28T05:00:00Z",
    "eventSource": "cloudtrail.amazonaws.com",
    "eventName": "StopLogging",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "198.51.100.7",
    "requestParameters": {"name": "main"},
    "eventID": "e1",
    "recipientAccountId": "123456789012",
}


def _alert(finding_type: str, event: dict, severity: Severity = Severity.HIGH) -> Alert:
    return Alert("r1", "Logging stopped", severity, finding_type, (event,))


def test_a_users_alert_is_a_finding_about_the_users_key():
    parsed = alert_to_finding(_alert("DefenseEvasion:IAMUser/CloudTrailLoggingDisabled", USER_EVENT))
    finding = parsed.finding
    assert finding.source == FindingSource.IRFLOW_DETECTION and finding.severity == Severity.HIGH
    assert (finding.account_id, finding.region, finding.remote_ip) == ("123456789012", "eu-west-1", "198.51.100.7")
    assert finding.resource.access_key_id == "AKIAEXAMPLEKEY000001" and finding.resource.user_name == "ci"
    assert parsed.raw["events"] == [USER_EVENT]
    assert route(finding).playbook == "iam-user-credentials"


def test_an_instance_role_session_goes_to_the_role_playbook_naming_the_instance():
    event = {
        **USER_EVENT,
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:i-0123456789abcdef0",
            "accessKeyId": "ASIAEXAMPLE000000001",
            "accountId": "123456789012",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "web-app"}},
        },
    }
    finding = alert_to_finding(_alert("CredentialAccess:IAMUser/SecretsBurst", event)).finding
    assert finding.resource.user_type == "AssumedRole" and finding.resource.user_name == "web-app"
    assert finding.resource.instance_id == "i-0123456789abcdef0"
    assert route(finding).playbook == "iam-role-sessions"


def test_root_activity_is_triaged_and_buckets_and_instances_are_the_subject_of_their_families():
    root = {**USER_EVENT, "userIdentity": {"type": "Root", "principalId": "123456789012", "accountId": "123456789012"}}
    assert route(alert_to_finding(_alert("Policy:IAMUser/RootCredentialUsage", root)).finding).playbook == "triage-only"
    bucket = {**USER_EVENT, "eventSource": "s3.amazonaws.com", "requestParameters": {"bucketName": "shop-assets"}}
    finding = alert_to_finding(_alert("Policy:S3/BucketAnonymousAccessGranted", bucket)).finding
    assert finding.resource.bucket_names == ("shop-assets",) and route(finding).playbook == "s3-bucket"
    instance = {**USER_EVENT, "requestParameters": {"instanceId": "i-0123456789abcdef0"}}
    finding = alert_to_finding(_alert("Persistence:EC2/UserDataModified", instance)).finding
    assert route(finding).playbook == "ec2-instance" and finding.resource.instance_id == "i-0123456789abcdef0"


def test_the_same_alert_twice_is_the_same_finding():
    one = alert_to_finding(_alert("DefenseEvasion:IAMUser/CloudTrailLoggingDisabled", USER_EVENT)).finding
    two = alert_to_finding(_alert("DefenseEvasion:IAMUser/CloudTrailLoggingDisabled", USER_EVENT)).finding
    assert one.id == two.id and one.raw_sha256 == two.raw_sha256
