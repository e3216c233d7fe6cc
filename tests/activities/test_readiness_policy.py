"""Reading IAM policy documents the way IAM does, for where the policy simulator is not there: globs, NotAction and
NotResource, Deny winning, conditions reported rather than guessed, a permissions boundary applied; and the
generated worker policy allowing every declared action exactly."""

from __future__ import annotations

import json

import pytest

from activities.readiness_permissions import probes
from activities.readiness_policy import decide, decide_all
from irflow.iam_policy import SCOPED_ACTIONS, declared_actions, worker_policy
from irflow.models.settings import get_settings
from tests.support import setting

BUCKET_OBJECT = "arn:aws:s3:::evidence/incidents/i-1/memory.lime"


def allow(action, resource="*", **extra) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}],
    }


def test_actions_match_by_glob_without_case_and_resources_with_case():
    assert decide([allow("EC2:Describe*")], "ec2:DescribeInstances", "*").allowed
    assert not decide([allow("ec2:Describe*")], "ec2:ModifyInstanceAttribute", "*").allowed
    assert decide([allow("s3:Get?bject")], "s3:GetObject", "*").allowed
    scoped = allow("s3:PutObject", "arn:aws:s3:::evidence/incidents/*")
    assert decide([scoped], "s3:PutObject", BUCKET_OBJECT).allowed
    assert not decide([scoped], "s3:PutObject", BUCKET_OBJECT.replace("evidence", "Evidence")).allowed


def test_asked_about_any_resource_a_statement_naming_some_covers_some():
    """`*` is "whatever resource a finding names": an Allow naming some resources allows the action there (not
    missing, and said), a Deny naming some forbids it there (the action cannot be counted on)."""
    scoped_allow = allow("ec2:StopInstances", "arn:aws:ec2:*:*:instance/*")
    decision = decide([scoped_allow], "ec2:StopInstances", "*")
    assert (decision.allowed, decision.some_resources, decision.partly_denied) == (True, True, False)
    assert not decide([scoped_allow, allow("ec2:StopInstances")], "ec2:StopInstances", "*").some_resources

    instances = {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "arn:aws:ec2:*:*:instance/*"}
    decision = decide([allow("*"), {"Statement": [instances]}], "ec2:TerminateInstances", "*")
    assert (decision.allowed, decision.denied, decision.partly_denied) == (False, False, True)
    all_but = {"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::evidence/*"}
    assert decide([allow("*"), {"Statement": [all_but]}], "s3:PutBucketPolicy", "*").partly_denied
    assert decide([allow("*"), {"Statement": [instances]}], "ec2:StopInstances", "*").allowed, "another action"
    # a concrete resource is matched as it is
    instance = "arn:aws:ec2:us-east-1:123456789012:instance/i-1"
    assert decide([allow("*"), {"Statement": [instances]}], "ec2:TerminateInstances", instance).denied


def test_an_explicit_deny_wins_wherever_it_is():
    denied = {"Statement": {"Effect": "Deny", "Action": ["iam:*"], "Resource": "*"}}
    decision = decide([allow("*"), denied], "iam:DeleteAccessKey", "*")
    assert (decision.allowed, decision.denied) == (False, True)
    assert decide([allow("*"), denied], "ec2:StopInstances", "*").allowed


def test_not_action_and_not_resource():
    everything_but_iam = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    assert decide([everything_but_iam], "ec2:StopInstances", "*").allowed
    assert not decide([everything_but_iam], "iam:ListRoles", "*").allowed
    not_there = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}]}
    assert decide([not_there], "s3:GetObject", "arn:aws:s3:::evidence/x").allowed
    assert not decide([not_there], "s3:GetObject", "arn:aws:s3:::secret/x").allowed


def test_conditions_are_reported_not_evaluated():
    on_condition = allow("ssm:SendCommand", Condition={"StringLike": {"ssm:resourceTag/irflow:incident-id": "*"}})
    decision = decide([on_condition], "ssm:SendCommand", "*")
    assert (decision.allowed, decision.conditional) == (True, True)
    deny_on_condition = {
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}},
            }
        ]
    }
    decision = decide([allow("*"), deny_on_condition], "ec2:StopInstances", "*")
    assert (decision.allowed, decision.denied, decision.conditional) == (True, False, True)


def test_every_resource_must_be_allowed_and_a_boundary_limits():
    document_only = allow("ssm:SendCommand", "arn:aws:ssm:*:*:document/irflow-CaptureMemory")
    resources = ["arn:aws:ssm:us-east-1:1:document/irflow-CaptureMemory", "arn:aws:ec2:us-east-1:1:instance/i-1"]
    assert not decide_all([document_only], "ssm:SendCommand", resources).allowed
    assert decide_all([allow("ssm:SendCommand")], "ssm:SendCommand", resources).allowed
    boundary = [allow("ec2:*")]
    assert not decide_all([allow("*")], "iam:ListRoles", ["*"], boundary).allowed
    assert decide_all([allow("*")], "ec2:StopInstances", ["*"], boundary).allowed


@pytest.fixture
def evidence_bucket(monkeypatch):
    setting(monkeypatch, evidence_bucket="evidence")


def test_the_actions_asked_about_a_resource_are_the_ones_irflow_policy_scopes(evidence_bucket):
    """An action `irflow policy` grants on some resources only, asked about `*`, would read as allowed on some
    resources only: each is asked about a resource of the kind it is granted on."""
    assert set(probes(get_settings(), "123456789012", "us-east-1")) == SCOPED_ACTIONS


def test_the_generated_worker_policy_allows_exactly_the_declared_actions(evidence_bucket):
    """What the fallback reads must agree with what `irflow policy` writes, scoped statements included: every
    declared action allowed, and taking one out is seen."""
    policy = worker_policy()
    scoped = probes(get_settings(), "123456789012", "us-east-1")

    def refused(documents: list[dict]) -> list[str]:
        return [
            action
            for action in sorted(declared_actions())
            if not decide_all(documents, action, list(scoped.get(action, (("*",), ()))[0])).allowed
        ]

    assert refused([policy]) == []
    for action in ("ssm:SendCommand", "s3:PutObject", "iam:PassRole", "ec2:CreateSnapshot"):
        assert action in declared_actions()
        trimmed = json.loads(json.dumps(policy))
        for statement in trimmed["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]
        assert refused([trimmed]) == [action]
