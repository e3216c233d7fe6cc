"""Least-privilege IAM generated from the activities' declarations: the worker's policy and the responder role
in member accounts, and the copies committed under infra/ (`make policy` writes them)."""

from __future__ import annotations

import json

import activities
from irflow.iam_policy import member_policy, member_role_template, worker_policy
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
