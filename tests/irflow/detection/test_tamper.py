"""Tamper calls: every call that can undo a containment maps to the handles of what it touched (the same handles
a contained incident publishes), the look-alikes map to nothing, the finding names the caller, and irflow's own
calls (its containment and its undo make exactly these calls) never become tamper findings."""

from __future__ import annotations

import pytest

from activities.iam import revocation_policy_name
from irflow.detection.detector import Detector
from irflow.detection.tamper import (
    REVOCATION_POLICY_PREFIX,
    TAMPER_SHAPE,
    TamperFinding,
    tamper_finding,
    tamper_handles,
)
from irflow.models.finding import FindingSource, Severity
from irflow.models.guarded import guard_handle
from irflow.models.settings import IrflowSettings
from irflow.own_principals import own_principal_patterns

ACCOUNT = "123456789012"
OTHER = "210987654321"  # the caller's account, in a cross-account call
ADMIN = f"arn:aws:iam::{OTHER}:user/hurried-admin"
RESPONDER = f"arn:aws:sts::{ACCOUNT}:assumed-role/irflow-responder/irflow-incident-1"
POLICY = revocation_policy_name("inc-iam-role-0001")
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:payments-worker"
DB_ARN = f"arn:aws:rds:eu-west-1:{ACCOUNT}:db:orders-db"
OPEN_TO_WORLD = {"items": [{"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}


def call(source: str, name: str, parameters: dict, caller: str = ADMIN, **extra) -> dict:
    """A CloudTrail record as AWS writes it: `recipientAccountId` is the resource's account."""
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": caller, "accountId": caller.split(":")[4], "userName": "x"},
        "eventTime": "2026-12-07T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.20",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": parameters,
        "responseElements": None,
        "eventID": f"{source.split('.')[0]}-{name}-1",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
        **extra,
    }


def iam(name: str, **parameters) -> dict:
    return call("iam.amazonaws.com", name, parameters)


def ec2(name: str, **parameters) -> dict:
    return call("ec2.amazonaws.com", name, parameters)


def s3(name: str, **parameters) -> dict:
    return call("s3.amazonaws.com", name, parameters)


def lam(name: str, **parameters) -> dict:
    return call("lambda.amazonaws.com", name, parameters)


def rds(name: str, **parameters) -> dict:
    return call("rds.amazonaws.com", name, parameters)


# (record, the kind of handle, the value handled, the finding's resource type)
TAMPER_CALLS = [
    (iam("UpdateAccessKey", accessKeyId="AKIA1", status="Active", userName="u"), "access-key", "AKIA1", "AccessKey"),
    (iam("UpdateAccessKey", accessKeyId="AKIA2", status="active"), "access-key", "AKIA2", "AccessKey"),
    (ec2("ModifyNetworkInterfaceAttribute", networkInterfaceId="eni-0a1"), "eni", "eni-0a1", "NetworkInterface"),
    (ec2("ModifyInstanceAttribute", instanceId="i-0abc1234def56789"), "instance", "i-0abc1234def56789", "Instance"),
    (ec2("AuthorizeSecurityGroupIngress", groupId="sg-0q"), "security-group", "sg-0q", "SecurityGroup"),
    (ec2("AuthorizeSecurityGroupEgress", groupId="sg-0q"), "security-group", "sg-0q", "SecurityGroup"),
    (
        ec2("ModifySecurityGroupRules", ModifySecurityGroupRulesRequest={"GroupId": "sg-0q", "SecurityGroupRule": {}}),
        "security-group",
        "sg-0q",
        "SecurityGroup",
    ),
    (iam("DeleteUserPolicy", userName="mallory", policyName=POLICY), "iam-user", "mallory", "IAMUser"),
    (
        iam("PutUserPolicy", userName="mallory", policyName=POLICY, policyDocument="{}"),
        "iam-user",
        "mallory",
        "IAMUser",
    ),
    (iam("DeleteRolePolicy", roleName="web-role", policyName=POLICY), "iam-role", "web-role", "IAMRole"),
    (
        iam("PutRolePolicy", roleName="web-role", policyName=POLICY, policyDocument="{}"),
        "iam-role",
        "web-role",
        "IAMRole",
    ),
    (s3("PutBucketPolicy", bucketName="payroll", bucketPolicy={}), "bucket", "payroll", "S3Bucket"),
    (s3("DeleteBucketPolicy", bucketName="payroll"), "bucket", "payroll", "S3Bucket"),
    (s3("DeletePublicAccessBlock", bucketName="payroll"), "bucket", "payroll", "S3Bucket"),
    (s3("DeleteBucketPublicAccessBlock", bucketName="payroll"), "bucket", "payroll", "S3Bucket"),
    (s3("PutBucketPublicAccessBlock", bucketName="payroll"), "bucket", "payroll", "S3Bucket"),
    (lam("PutFunctionConcurrency20171031", functionName="payments-worker"), "function", "payments-worker", "Lambda"),
    (lam("DeleteFunctionConcurrency", functionName=FUNCTION_ARN), "function", "payments-worker", "Lambda"),
    (lam("PutFunctionConcurrency", functionName=f"{FUNCTION_ARN}:live"), "function", "payments-worker", "Lambda"),
    (rds("ModifyDBInstance", dBInstanceIdentifier="orders-db"), "db-instance", "orders-db", "RDSDBInstance"),
    (rds("ModifyDBInstance", dBInstanceIdentifier=DB_ARN), "db-instance", "orders-db", "RDSDBInstance"),
]


def _name(value) -> str:
    return value["eventName"] if isinstance(value, dict) else ""


@pytest.mark.parametrize(("record", "kind", "value", "resource_type"), TAMPER_CALLS, ids=_name)
def test_every_tamper_call_maps_to_the_handle_an_incident_publishes(record, kind, value, resource_type):
    assert tamper_handles(record) == [guard_handle(ACCOUNT, kind, value)]
    parsed = tamper_finding(record)
    assert parsed is not None and parsed.handles == tamper_handles(record)
    assert parsed.finding.resource.resource_type == resource_type and parsed.finding.resource.resource_id == value
    assert parsed.finding.type == f"irflow:Tamper/{record['eventName'].removesuffix('20171031')}"


def test_identities_are_hashed_in_the_handles_and_the_account_is_the_resources():
    [handle] = tamper_handles(TAMPER_CALLS[0][0])
    assert handle.startswith(f"{ACCOUNT}:access-key:h") and "AKIA1" not in handle
    assert OTHER not in handle  # the caller's account is not the resource's


NOT_TAMPER = [
    iam("UpdateAccessKey", accessKeyId="AKIA1", status="Inactive"),
    iam("DeleteUserPolicy", userName="mallory", policyName="team-s3-read"),
    iam("DeleteRolePolicy", roleName="web-role", policyName="AllowLogs"),
    iam("PutUserPolicy", userName="mallory", policyName="irflow-something-else"),
    ec2("RevokeSecurityGroupIngress", groupId="sg-0q"),  # closing a group undoes no containment
    ec2("AuthorizeSecurityGroupIngress", groupName="default"),  # no group id: nothing to look for
    ec2("DescribeInstances", instancesSet={}),
    s3("GetBucketPolicy", bucketName="payroll"),
    {**s3("PutBucketPolicy", bucketName="payroll"), "eventSource": "iam.amazonaws.com"},
    rds("ModifyDBCluster", dBClusterIdentifier="orders"),
    {**ec2("ModifyInstanceAttribute", instanceId="i-0abc"), "errorCode": "InvalidInstanceID.NotFound"},
    s3("PutBucketPolicy", bucketName="it's"),  # no AWS name; it would break the visibility query
    {**s3("PutBucketPolicy", bucketName="payroll"), "recipientAccountId": None, "userIdentity": {}},
]


@pytest.mark.parametrize("record", NOT_TAMPER, ids=lambda r: f"{r['eventName']}-{r.get('errorCode') or ''}")
def test_look_alikes_touch_nothing(record):
    assert tamper_handles(record) == []
    assert tamper_finding(record) is None


def test_a_refused_attempt_counts_a_failed_one_does_not():
    refused = {**iam("UpdateAccessKey", accessKeyId="AKIA1", status="Active"), "errorCode": "AccessDenied"}
    parsed = tamper_finding(refused)
    assert parsed is not None and "refused: AccessDenied" in parsed.finding.title
    unauthorized = {**ec2("ModifyInstanceAttribute", instanceId="i-1"), "errorCode": "Client.UnauthorizedOperation"}
    assert tamper_handles(unauthorized)
    assert tamper_handles({**unauthorized, "errorCode": "Client.InvalidParameterValue"}) == []
    assert tamper_handles("not a record") == []  # type: ignore[arg-type]


def test_the_revocation_policy_prefix_is_the_one_the_activities_write():
    assert revocation_policy_name("inc-iam-role-0001").startswith(REVOCATION_POLICY_PREFIX)


def test_the_finding_describes_the_tamper_and_names_the_caller():
    record = TAMPER_CALLS[0][0]
    parsed = tamper_finding(record)
    assert isinstance(parsed, TamperFinding) and parsed.original_shape == TAMPER_SHAPE
    finding = parsed.finding
    assert finding.type == "irflow:Tamper/UpdateAccessKey" and finding.is_tamper
    assert finding.source == FindingSource.IRFLOW_DETECTION
    assert finding.severity == Severity.HIGH and finding.severity_score >= 7
    assert finding.actor_arn == ADMIN
    assert finding.account_id == ACCOUNT and finding.region == "eu-west-1"
    assert finding.resource.access_key_id == "AKIA1" and finding.resource.user_name == "u"
    assert finding.first_seen == finding.last_seen and finding.first_seen.isoformat().startswith("2026-12-07T10:00")
    assert parsed.raw["events"] == [record] and parsed.raw["guarded"] == parsed.handles
    assert finding.remote_ip == "198.51.100.20"
    # one call, one finding: the same record again (the log file after EventBridge) has the same id
    assert tamper_finding(dict(record)).finding.id == finding.id
    assert tamper_finding({**record, "eventID": "another"}).finding.id != finding.id


def test_a_service_call_without_an_arn_names_the_service():
    record = {**s3("PutBucketPolicy", bucketName="payroll"), "userIdentity": {"type": "AWSService"}}
    record["userIdentity"]["invokedBy"] = "cloudformation.amazonaws.com"
    assert tamper_finding(record).finding.actor_arn == "cloudformation.amazonaws.com"


def _detector() -> Detector:
    return Detector(own_principals=own_principal_patterns(IrflowSettings(), RESPONDER))


def test_the_detector_skips_irflows_own_tamper_calls_as_it_skips_its_other_records():
    detector = _detector()
    for record, *_ in TAMPER_CALLS:
        own = {**record, "userIdentity": {"type": "AssumedRole", "arn": RESPONDER, "accountId": ACCOUNT}}
        assert detector(own) == []
    assert sum(detector.own.values()) == len(TAMPER_CALLS) and not detector.tamper


def test_the_detector_raises_a_tamper_finding_for_anyone_else_and_the_rules_still_judge_the_call():
    detector = _detector()
    found = detector(ec2("AuthorizeSecurityGroupIngress", groupId="sg-0q", ipPermissions=OPEN_TO_WORLD))
    [tampered] = [f for f in found if isinstance(f, TamperFinding)]
    assert tampered.handles == [guard_handle(ACCOUNT, "security-group", "sg-0q")]
    others = [f.finding.type for f in found if not isinstance(f, TamperFinding)]
    assert others == ["Policy:EC2/SecurityGroupOpenToWorld"]  # about the caller's key: its own incident
    assert detector.tamper == {"AuthorizeSecurityGroupIngress": 1}
    # tamper findings are never grouped away: the twelfth reactivation matters as much as the first
    key = TAMPER_CALLS[0][0]
    assert all(any(isinstance(f, TamperFinding) for f in detector({**key, "eventID": f"n{n}"})) for n in range(12))
