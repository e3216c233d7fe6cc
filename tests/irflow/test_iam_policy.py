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
    quarantine_role_policy,
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


SSM_CORE = {
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:DescribeAssociation",
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    *(
        f"ec2messages:{name}"
        for name in ("AcknowledgeMessage", "DeleteMessage", "FailMessage", "GetEndpoint", "GetMessages", "SendReply")
    ),
    *(
        f"ssmmessages:{name}"
        for name in ("CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel")
    ),
}


def test_the_quarantine_role_runs_commands_and_uploads_its_own_memory_image_and_nothing_else(monkeypatch):
    monkeypatch.delenv("IRFLOW_EVIDENCE_KMS_KEY_ID", raising=False)
    monkeypatch.setenv("IRFLOW_EVIDENCE_BUCKET", "acme-evidence")
    get_settings.cache_clear()
    ssm, upload = quarantine_role_policy()["Statement"]
    assert set(ssm["Action"]) == SSM_CORE and len(ssm["Action"]) == len(SSM_CORE)
    assert upload["Action"] == ["s3:PutObject"]
    # Each instance writes only into the folder named after its own session (<role id>:<instance id>).
    assert upload["Resource"] == "arn:aws:s3:::acme-evidence/incidents/*/memory/${aws:userid}/*"
    assert upload["Resource"].endswith("/incidents/*/memory/${aws:userid}/*")
    actions = [a for s in quarantine_role_policy()["Statement"] for a in s["Action"]]
    assert not [a for a in actions if "*" in a], "no wildcard action"
    assert not {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:PutInventory"} & set(
        actions
    ), "an attacker on the instance must not read the account's parameters"
    assert all(s["Effect"] == "Allow" for s in quarantine_role_policy()["Statement"])


def test_the_quarantine_role_uses_the_evidence_key_only_when_there_is_one_and_only_through_s3(monkeypatch):
    monkeypatch.delenv("IRFLOW_EVIDENCE_KMS_KEY_ID", raising=False)
    get_settings.cache_clear()
    assert not [s for s in quarantine_role_policy()["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
    for configured, resource in (
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:*:*:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("arn:aws:kms:eu-west-1:123456789012:key/k-1", "arn:aws:kms:eu-west-1:123456789012:key/k-1"),
    ):
        monkeypatch.setenv("IRFLOW_EVIDENCE_KMS_KEY_ID", configured)
        get_settings.cache_clear()
        [key] = [s for s in quarantine_role_policy()["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
        # GenerateDataKey starts an SSE-KMS upload; Decrypt adds the parts of a multipart one.
        assert key["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert key["Resource"] == resource
        assert key["Condition"] == {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}


def test_the_member_template_makes_the_quarantine_profile_on_a_role_only_ec2_can_assume(monkeypatch):
    monkeypatch.delenv("IRFLOW_EVIDENCE_KMS_KEY_ID", raising=False)
    monkeypatch.setenv("IRFLOW_EVIDENCE_BUCKET", "acme-evidence")
    get_settings.cache_clear()
    resources = member_role_template()["Resources"]
    role = resources["QuarantineRole"]["Properties"]
    assert role["RoleName"] == "irflow-quarantine"
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    [policy] = role["Policies"]
    ssm, upload = policy["PolicyDocument"]["Statement"]
    assert ssm == quarantine_role_policy()["Statement"][0]
    # The bucket is the stack's parameter, never this worker's setting; IAM's own variable is escaped for Fn::Sub.
    assert upload["Resource"] == {"Fn::Sub": "arn:aws:s3:::${EvidenceBucket}/incidents/*/memory/${!aws:userid}/*"}
    assert {"Key": "irflow:component", "Value": "quarantine"} in role["Tags"]
    profile = resources["QuarantineInstanceProfile"]["Properties"]
    assert profile == {"InstanceProfileName": "irflow-quarantine", "Roles": [{"Ref": "QuarantineRole"}]}
    monkeypatch.setenv("IRFLOW_QUARANTINE_INSTANCE_PROFILE", "acme-quarantine")
    get_settings.cache_clear()
    resources = member_role_template()["Resources"]
    assert resources["QuarantineRole"]["Properties"]["RoleName"] == "acme-quarantine"
    assert resources["QuarantineInstanceProfile"]["Properties"]["InstanceProfileName"] == "acme-quarantine"
    # The responder keeps exactly its own policy.
    assert resources["ResponderRole"]["Properties"]["Policies"] == [
        {"PolicyName": "irflow-responder", "PolicyDocument": member_policy()}
    ]
