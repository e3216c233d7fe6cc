"""infra/member-role.json: the responder role each member account deploys (generated from the code)."""

from __future__ import annotations

import ast
import json
import subprocess

import boto3

from irflow.iam_policy import member_policy, quarantine_role_policy
from irflow.models.settings import get_settings
from tests.infra.test_findings_intake import CFN_LINT
from tests.support import REPO, member_session

TEMPLATE = REPO / "infra" / "member-role.json"
MEMBER = "210987654321"


def _document(value):
    """A policy document as IAM returns it; moto's CloudFormation stores inline policies as a Python repr."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


def test_cfn_lint_passes():
    result = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"


def deploy(member) -> None:
    member.client("cloudformation").create_stack(
        StackName="irflow-responder",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "SecurityAccountId", "ParameterValue": "123456789012"},
            {"ParameterKey": "ExternalId", "ParameterValue": "irflow-ext-1"},
            {"ParameterKey": "EvidenceBucket", "ParameterValue": "acme-evidence"},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )


def test_deployed_in_a_member_account_it_trusts_only_the_security_accounts_worker(aws):
    member = member_session(MEMBER)
    deploy(member)
    iam = member.client("iam")
    role = iam.get_role(RoleName="irflow-responder")["Role"]
    assert role["Arn"] == f"arn:aws:iam::{MEMBER}:role/irflow-responder"
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/irflow-worker"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "irflow-ext-1"}}
    document = iam.get_role_policy(RoleName="irflow-responder", PolicyName="irflow-responder")["PolicyDocument"]
    assert _document(document) == member_policy()
    # Nothing of this lands in the security account.
    assert "irflow-responder" not in [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]


def test_deployed_it_makes_the_quarantine_profile_whose_role_writes_only_its_own_memory_folder(aws, monkeypatch):
    member = member_session(MEMBER)
    deploy(member)
    iam = member.client("iam")
    profile = iam.get_instance_profile(InstanceProfileName="irflow-quarantine")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["irflow-quarantine"]
    role = iam.get_role(RoleName="irflow-quarantine")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
    document = iam.get_role_policy(RoleName="irflow-quarantine", PolicyName="irflow-quarantine")["PolicyDocument"]
    # CloudFormation put the stack's bucket in and left IAM's ${aws:userid} for IAM.
    monkeypatch.setenv("IRFLOW_EVIDENCE_BUCKET", "acme-evidence")
    monkeypatch.delenv("IRFLOW_EVIDENCE_KMS_KEY_ID", raising=False)
    get_settings.cache_clear()
    assert _document(document) == quarantine_role_policy()
    [upload] = [s for s in _document(document)["Statement"] if s["Action"] == ["s3:PutObject"]]
    assert upload["Resource"] == "arn:aws:s3:::acme-evidence/incidents/*/memory/${aws:userid}/*"
    outputs = member.client("cloudformation").describe_stacks(StackName="irflow-responder")["Stacks"][0]["Outputs"]
    assert {o["OutputKey"]: o["OutputValue"] for o in outputs}["QuarantineInstanceProfileName"] == "irflow-quarantine"


def test_the_responder_sends_only_the_capture_document_to_tagged_instances_and_passes_roles_only_to_ec2():
    statements = json.loads(TEMPLATE.read_text())["Resources"]["ResponderRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    send = {s["Resource"]: s.get("Condition") for s in statements if "ssm:SendCommand" in s["Action"]}
    assert send == {
        "arn:aws:ssm:*:*:document/irflow-CaptureMemory": None,
        "arn:aws:ec2:*:*:instance/*": {"StringLike": {"ssm:resourceTag/irflow:incident-id": "*"}},
    }
    [passing] = [s for s in statements if "iam:PassRole" in s["Action"]]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"},
        "ArnLike": {"iam:AssociatedResourceArn": "arn:aws:ec2:*:*:instance/*"},
    }
    assert not [s for s in statements if "s3:PutObject" in s["Action"]], "evidence is written by the worker only"
