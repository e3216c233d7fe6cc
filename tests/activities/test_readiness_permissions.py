"""The roles irflow acts as: the worker's role (named, or found from its own credentials), asked with the IAM policy
simulator as documented (botocore's Stubber holds the request to the service model) or, where there is none
(moto), compared with its policies; and member roles assumed and compared in their own account."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from activities.aws import client, reset_clients
from activities.readiness_permissions import (
    member_role_assumable,
    member_role_permissions,
    probes,
    role_of,
    role_verdict,
    worker_permissions,
)
from irflow.devstack.readiness import WORKER_POLICY, WORKER_ROLE, worker_role
from irflow.iam_policy import member_policy
from irflow.models.readiness import CheckStatus, ReadinessScope
from irflow.models.settings import get_settings
from tests.support import member_session, setting

REGION = "us-east-1"
SCOPE = ReadinessScope(account_id="", region=REGION)
MEMBER = "111122223333"
ROLE_ARN = "arn:aws:iam::123456789012:role/ops/irflow-worker"


def test_the_role_of_an_assumed_role_session_and_nothing_else():
    assert role_of("arn:aws:sts::123456789012:assumed-role/irflow-worker/i-0abc") == (
        "arn:aws:iam::123456789012:role/irflow-worker"
    )
    assert role_of("arn:aws-us-gov:sts::123456789012:assumed-role/w/s") == "arn:aws-us-gov:iam::123456789012:role/w"
    assert role_of("arn:aws:iam::123456789012:user/moto") is None
    assert role_of("arn:aws:iam::123456789012:root") is None


def test_credentials_that_are_no_role_are_unknown(aws):
    result = worker_permissions(SCOPE)
    assert result.status == CheckStatus.UNKNOWN
    assert "arn:aws:sts::123456789012:user/moto, not a role: set IRFLOW_WORKER_ROLE_ARN" in result.evidence


def test_a_worker_role_setting_that_is_no_role_arn_is_unknown(aws, monkeypatch):
    setting(monkeypatch, worker_role_arn="irflow-worker")
    result = worker_permissions(SCOPE)
    assert result.status == CheckStatus.UNKNOWN and "is not a role's ARN" in result.evidence


def test_the_worker_running_as_its_role_is_found_from_sts_and_compared(workload, monkeypatch):
    worker_role(workload)
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{workload.account_id}:role/{WORKER_ROLE}", RoleSessionName="worker-host"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    reset_clients()
    result = worker_permissions(SCOPE)
    assert result.status == CheckStatus.PASS
    assert f"role arn:aws:iam::{workload.account_id}:role/{WORKER_ROLE} allows all" in result.evidence
    assert "comparison with the role's policies" in result.evidence and "conditions not evaluated" in result.evidence


def test_a_missing_role_and_a_deny_in_an_attached_policy_fail(workload, monkeypatch):
    setting(monkeypatch, worker_role_arn=f"arn:aws:iam::{workload.account_id}:role/{WORKER_ROLE}")
    missing = worker_permissions(SCOPE)
    assert missing.status == CheckStatus.FAIL and f"role/{WORKER_ROLE} does not exist" in missing.evidence
    assert missing.fix.startswith("irflow policy > worker-policy.json, then attach it to the role irflow-worker")

    worker_role(workload)
    iam = boto3.client("iam", region_name=REGION)
    no_termination = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": ["ec2:Terminate*", "iam:Delete*"], "Resource": "*"}],
    }
    guard = iam.create_policy(PolicyName="no-termination", PolicyDocument=json.dumps(no_termination))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=WORKER_ROLE, PolicyArn=guard)
    result = worker_permissions(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert "ec2:TerminateInstances" in result.evidence and "iam:DeleteAccessKey" in result.evidence
    assert "ec2:StopInstances" not in result.evidence
    assert "ec2:TerminateInstances: not allowed" in result.problems and result.problems == sorted(result.problems)


def _attach(iam, name: str, *statements: dict) -> None:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=WORKER_ROLE, PolicyArn=arn)


def test_a_deny_naming_some_resources_fails_and_an_allow_naming_some_is_said(workload, monkeypatch):
    """The policies compared about `*` (any resource a finding names): a Deny on every instance stops irflow
    terminating one, though it names no `*`; an Allow scoped to some resources is not a missing action."""
    setting(monkeypatch, worker_role_arn=f"arn:aws:iam::{workload.account_id}:role/{WORKER_ROLE}")
    worker_role(workload)
    iam = boto3.client("iam", region_name=REGION)
    _attach(
        iam,
        "no-termination",
        {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "arn:aws:ec2:*:*:instance/*"},
    )
    result = worker_permissions(SCOPE)
    assert result.status == CheckStatus.FAIL
    assert "is denied ec2:TerminateInstances on some resources (a Deny naming them)" in result.evidence
    assert result.problems == ["ec2:TerminateInstances: denied on some resources"]

    iam.detach_role_policy(RoleName=WORKER_ROLE, PolicyArn=f"arn:aws:iam::{workload.account_id}:policy/no-termination")
    policy = iam.get_role_policy(RoleName=WORKER_ROLE, PolicyName=WORKER_POLICY)["PolicyDocument"]
    for statement in policy["Statement"]:
        if "ec2:StopInstances" in statement["Action"]:
            statement["Action"].remove("ec2:StopInstances")
    policy["Statement"].append(
        {"Effect": "Allow", "Action": ["ec2:StopInstances"], "Resource": "arn:aws:ec2:*:*:instance/*"}
    )
    iam.put_role_policy(RoleName=WORKER_ROLE, PolicyName=WORKER_POLICY, PolicyDocument=json.dumps(policy))
    result = worker_permissions(SCOPE)
    assert result.status == CheckStatus.PASS
    assert result.evidence.endswith("; allowed on some resources only: ec2:StopInstances")


def test_the_simulator_is_asked_as_documented_and_trusted_where_it_answers(aws, monkeypatch):
    setting(monkeypatch, evidence_bucket="evidence")
    actions = ["ec2:DescribeInstances", "ec2:StopInstances", "iam:PassRole", "s3:PutObject"]
    scoped = probes(get_settings(), "123456789012", REGION)
    iam = client("iam", None)
    role = {"Path": "/ops/", "RoleName": "irflow-worker", "RoleId": "AROAEXAMPLE0000000001", "Arn": ROLE_ARN}
    with Stubber(iam) as stub:
        stub.add_response(
            "get_role", {"Role": {**role, "CreateDate": datetime.now(UTC)}}, {"RoleName": "irflow-worker"}
        )

        def answer(names, decision, **request):
            results = [{"EvalActionName": n, "EvalDecision": decision} for n in names]
            expected = {"PolicySourceArn": ROLE_ARN, "ActionNames": names, **request}
            stub.add_response(
                "simulate_principal_policy", {"EvaluationResults": results, "IsTruncated": False}, expected
            )

        answer(["ec2:DescribeInstances", "ec2:StopInstances"], "allowed")
        answer(
            ["iam:PassRole"],
            "allowed",
            ResourceArns=["arn:aws:iam::123456789012:role/readiness-probe"],
            ContextEntries=[
                {
                    "ContextKeyName": "iam:PassedToService",
                    "ContextKeyValues": ["ec2.amazonaws.com"],
                    "ContextKeyType": "string",
                },
                {
                    "ContextKeyName": "iam:AssociatedResourceArn",
                    "ContextKeyValues": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"],
                    "ContextKeyType": "string",
                },
            ],
        )
        answer(
            ["s3:PutObject"], "implicitDeny", ResourceArns=["arn:aws:s3:::evidence/incidents/readiness-probe/object"]
        )
        verdict = role_verdict(iam, "arn:aws:iam::123456789012:role/irflow-worker", actions, scoped, "mend it")
        stub.assert_no_pending_responses()
    assert verdict.status == CheckStatus.FAIL
    assert verdict.evidence == (
        f"role {ROLE_ARN} lacks 1 of 4 action(s): s3:PutObject (IAM policy simulation (iam:SimulatePrincipalPolicy))"
    )


@pytest.fixture
def member(aws, monkeypatch) -> boto3.client:
    """A member account with the responder role `irflow policy --member-template` makes (its policy inline)."""
    setting(monkeypatch, accounts=MEMBER)
    iam = member_session(MEMBER, REGION).client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName="irflow-responder", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="irflow-responder", PolicyName="irflow-responder", PolicyDocument=json.dumps(member_policy())
    )
    return iam


def test_a_member_role_is_assumed_and_allows_the_member_actions(member):
    scope = ReadinessScope(account_id=MEMBER, region=REGION)
    assumable = member_role_assumable(scope)
    assert assumable.status == CheckStatus.PASS
    assert assumable.evidence == f"assumed arn:aws:iam::{MEMBER}:role/irflow-responder and acted with its session"
    permissions = member_role_permissions(scope)
    assert permissions.status == CheckStatus.PASS and "irflow-responder allows all" in permissions.evidence
    assert (permissions.account_id, permissions.region) == (MEMBER, REGION)

    trimmed = member_policy()
    for statement in trimmed["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "ec2:ModifyNetworkInterfaceAttribute"]
    member.put_role_policy(
        RoleName="irflow-responder", PolicyName="irflow-responder", PolicyDocument=json.dumps(trimmed)
    )
    result = member_role_permissions(scope)
    assert result.status == CheckStatus.FAIL and "ec2:ModifyNetworkInterfaceAttribute" in result.evidence
    assert result.fix.startswith("irflow policy --member-template > member-role.json, then in account 111122223333")


def test_a_member_role_that_cannot_be_assumed_fails_with_the_member_template(aws, monkeypatch):
    setting(monkeypatch, accounts=MEMBER, member_external_id="shared-secret")
    with Stubber(client("sts", None)) as stub:
        expected = {
            "RoleArn": f"arn:aws:iam::{MEMBER}:role/irflow-responder",
            "RoleSessionName": "irflow-readiness",
            "DurationSeconds": 900,
            "ExternalId": "shared-secret",
        }
        stub.add_client_error("assume_role", "AccessDenied", "not trusted", 403, expected_params=expected)
        result = member_role_assumable(ReadinessScope(account_id=MEMBER, region=REGION))
    assert result.status == CheckStatus.FAIL
    assert "assuming arn:aws:iam::111122223333:role/irflow-responder was refused" in result.evidence
    assert "irflow policy --member-template" in result.fix


def test_in_the_security_account_member_checks_have_nothing_to_do(aws):
    own = ReadinessScope(account_id="123456789012", region=REGION)  # IRFLOW_ACCOUNTS naming the worker's own
    assert member_role_assumable(own).status == CheckStatus.PASS
    assert member_role_permissions(own).evidence == "the security account: see worker.permissions"
