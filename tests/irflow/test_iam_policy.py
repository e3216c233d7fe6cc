"""Least-privilege IAM generated from the activities' declarations: the worker's policy and the responder role
in member accounts, and the copies committed under infra/ (`make policy` writes them)."""

from __future__ import annotations

import json

import activities
from activities.evidence import evidence_prefix
from irflow.iam_policy import (
    SCOPED_ACTIONS,
    SECURITY_ACCOUNT_ONLY,
    declared_actions,
    member_policy,
    member_role_template,
    worker_policy,
)
from irflow.models.settings import get_settings
from tests.support import REPO


def test_committed_worker_policy_is_generated_from_the_code():
    committed = json.loads((REPO / "infra" / "worker-policy.json").read_text())
    assert committed == worker_policy()


def test_worker_policy_grants_exactly_the_declared_actions():
    *declared_statements, assume = worker_policy()["Statement"]
    granted = {a for statement in declared_statements for a in statement["Action"]}
    declared = {a for actions in activities.required_iam_actions().values() for a in actions}
    assert granted == declared
    assert all(s["Effect"] == "Allow" for s in worker_policy()["Statement"])
    # Beyond its own account, the worker can only become the responder role.
    assert assume["Action"] == ["sts:AssumeRole"]
    assert assume["Resource"] == "arn:aws:iam::*:role/irflow-responder"


def test_member_accounts_get_the_resource_actions_without_evidence_or_notification_writes():
    granted = {a for statement in member_policy()["Statement"] for a in statement["Action"]}
    assert {"iam:PutRolePolicy", "ec2:ModifyNetworkInterfaceAttribute", "s3:PutBucketPublicAccessBlock"} <= granted
    assert not granted & {"s3:PutObject", "s3:PutObjectRetention", "sns:Publish", "sts:AssumeRole"}
    assert len(json.dumps(member_policy(), separators=(",", ":"))) < 10_240, "IAM's inline role policy size limit"


def test_committed_member_role_template_is_generated_from_the_code():
    committed = json.loads((REPO / "infra" / "member-role.json").read_text())
    assert committed == member_role_template()
    role = committed["Resources"]["ResponderRole"]["Properties"]
    assert role["RoleName"] == "irflow-responder"
    assert role["Policies"][0]["PolicyDocument"] == member_policy()


def _granting(policy: dict, action: str) -> list[dict]:
    return [s for s in policy["Statement"] if action in s["Action"]]


def test_evidence_objects_are_written_only_under_the_incidents_prefix_of_the_evidence_bucket(monkeypatch):
    [statement] = _granting(worker_policy(), "s3:PutObject")
    assert statement["Action"] == ["s3:PutObject", "s3:PutObjectRetention"]
    assert statement["Resource"] == "arn:aws:s3:::${EvidenceBucket}/incidents/*", "unconfigured: a placeholder"
    monkeypatch.setenv("IRFLOW_EVIDENCE_BUCKET", "acme-evidence")
    get_settings.cache_clear()
    [configured] = _granting(worker_policy(), "s3:PutObjectRetention")
    assert configured["Resource"] == "arn:aws:s3:::acme-evidence/incidents/*"
    assert evidence_prefix("x").startswith("incidents/"), "the layout the statement names"


def test_commands_are_sent_only_with_the_capture_document_to_instances_irflow_tagged():
    for policy in (worker_policy(), member_policy()):
        statements = _granting(policy, "ssm:SendCommand")
        assert all(s["Action"] == ["ssm:SendCommand"] for s in statements), "SendCommand has statements of its own"
        assert {s["Resource"] for s in statements} == {
            "arn:aws:ssm:*:*:document/irflow-CaptureMemory",
            "arn:aws:ec2:*:*:instance/*",
        }
        [on_instances] = [s for s in statements if ":instance/" in s["Resource"]]
        assert on_instances["Condition"] == {"StringLike": {"ssm:resourceTag/irflow:incident-id": "*"}}
    assert not [s for s in worker_policy()["Statement"] if s["Resource"] == "*" and "ssm:SendCommand" in s["Action"]]


def test_roles_are_passed_only_to_ec2():
    for policy in (worker_policy(), member_policy()):
        [statement] = _granting(policy, "iam:PassRole")
        assert statement["Action"] == ["iam:PassRole"]
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"},
            "ArnLike": {"iam:AssociatedResourceArn": "arn:aws:ec2:*:*:instance/*"},
        }


def test_only_the_scoped_actions_name_resources_and_everything_declared_is_still_granted():
    for policy, security_only in ((worker_policy(), set()), (member_policy(), SECURITY_ACCOUNT_ONLY)):
        granted = {a for s in policy["Statement"] for a in s["Action"]} - {"sts:AssumeRole"}
        assert granted == declared_actions() - security_only
        scoped = {a for s in policy["Statement"] if s["Resource"] != "*" for a in s["Action"]} - {"sts:AssumeRole"}
        assert scoped == SCOPED_ACTIONS & granted
