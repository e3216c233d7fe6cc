"""IAM for the worker, generated from what each activity declares (never guessed).

- `worker_policy()`: the worker's role in the security account: every declared action, plus assuming
  the responder role in member accounts.
- `member_policy()` and `member_role_template()`: the responder role in each member account (a
  CloudFormation template for a StackSet): the actions that touch resources, without the evidence and
  notification writes, which only ever happen in the security account.

Actions are granted on `"Resource": "*"` except where AWS lets a policy name what they may touch (`scoped`):
evidence objects only under `incidents/` in the evidence bucket, SSM commands only with the capture
document and only on instances irflow has tagged with an incident, roles passed only to EC2.
"""

from __future__ import annotations

from typing import Any

import activities
from irflow.models.settings import get_settings
from irflow.models.tagging import INCIDENT_TAG

# Actions only the security account needs: evidence objects and notifications are written there.
SECURITY_ACCOUNT_ONLY = {"s3:PutObject", "s3:PutObjectRetention", "s3:GetObject", "kms:GenerateDataKey", "sns:Publish"}


WORKER_ROLE_ARN = "arn:${AWS::Partition}:iam::${SecurityAccountId}:role/${WorkerRoleName}"
# Where the evidence bucket is not configured (IRFLOW_EVIDENCE_BUCKET), the policy names it by this placeholder:
# replace it before attaching the policy.
EVIDENCE_BUCKET_PLACEHOLDER = "${EvidenceBucket}"
EVIDENCE_OBJECT_ACTIONS = ("s3:PutObject", "s3:PutObjectRetention")


def scoped(actions: set[str]) -> list[dict[str, Any]]:
    """The statements for the declared actions that AWS lets a policy scope, each naming what it may touch.

    - Evidence writes: only objects under `incidents/` (activities.evidence.evidence_prefix) of the evidence
      bucket; every evidence key is `incidents/<incident id>/...`.
    - `ssm:SendCommand` is authorised against the document and against each instance: the document may only be
      the capture document (IRFLOW_MEMORY_CAPTURE_DOCUMENT), the instance only one carrying the
      `irflow:incident-id` tag. The EC2 playbook tags the instance (its first containment step) before it
      collects evidence, memory included, so every instance irflow captures is tagged by then.
    - `iam:PassRole` only to EC2 (`iam:PassedToService`), for an instance (`iam:AssociatedResourceArn`):
      containment passes the quarantine profile's role
      (IRFLOW_QUARANTINE_INSTANCE_PROFILE), and the undo passes the instance's own role back to it, which can
      be any role: naming the quarantine role alone would leave a rejected incident's instance without its
      profile.
    """
    settings = get_settings()
    partition = settings.aws_partition
    found: list[dict[str, Any]] = []
    evidence = sorted(actions & set(EVIDENCE_OBJECT_ACTIONS))
    if evidence:
        bucket = settings.evidence_bucket or EVIDENCE_BUCKET_PLACEHOLDER
        found.append(_allow("IrflowEvidenceObjects", evidence, f"arn:{partition}:s3:::{bucket}/incidents/*"))
    if "ssm:SendCommand" in actions:
        document = f"arn:{partition}:ssm:*:*:document/{settings.memory_capture_document}"
        found.append(_allow("IrflowSendCaptureDocument", ["ssm:SendCommand"], document))
        found.append(
            _allow(
                "IrflowSendCommandToIncidentInstances",
                ["ssm:SendCommand"],
                f"arn:{partition}:ec2:*:*:instance/*",
                {"StringLike": {f"ssm:resourceTag/{INCIDENT_TAG}": "*"}},
            )
        )
    if "iam:PassRole" in actions:
        found.append(
            _allow(
                "IrflowPassRoleToEc2",
                ["iam:PassRole"],
                f"arn:{partition}:iam::*:role/*",
                {
                    "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"},
                    "ArnLike": {"iam:AssociatedResourceArn": f"arn:{partition}:ec2:*:*:instance/*"},
                },
            )
        )
    return found


SCOPED_ACTIONS = {*EVIDENCE_OBJECT_ACTIONS, "ssm:SendCommand", "iam:PassRole"}


def _allow(sid: str, actions: list[str], resource: str, condition: dict | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _statements(actions: set[str]) -> list[dict[str, Any]]:
    by_service: dict[str, set[str]] = {}
    for action in actions - SCOPED_ACTIONS:
        by_service.setdefault(action.split(":", 1)[0], set()).add(action)
    return [
        {
            "Sid": f"Irflow{service.title().replace('-', '')}",
            "Effect": "Allow",
            "Action": sorted(found),
            "Resource": "*",
        }
        for service, found in sorted(by_service.items())
    ] + scoped(actions)


def declared_actions() -> set[str]:
    return {action for actions in activities.required_iam_actions().values() for action in actions}


def worker_policy() -> dict[str, Any]:
    settings = get_settings()
    return {
        "Version": "2012-10-17",
        "Statement": [
            *_statements(declared_actions()),
            {
                "Sid": "IrflowAssumeMemberResponderRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": f"arn:{settings.aws_partition}:iam::*:role/{settings.member_role_name}",
            },
            *_forensic_role(settings),
        ],
    }


def _forensic_role(settings) -> list[dict[str, Any]]:
    """Assuming the forensic account's own role, when it is not the member role (IRFLOW_FORENSIC_ROLE_NAME)."""
    role = settings.forensic_role_name
    if not settings.forensic_account_id or not role or role == settings.member_role_name:
        return []
    arn = f"arn:{settings.aws_partition}:iam::{settings.forensic_account_id}:role/{role}"
    return [{"Sid": "IrflowAssumeForensicRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": arn}]


def member_policy() -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": _statements(declared_actions() - SECURITY_ACCOUNT_ONLY)}


def member_role_template() -> dict[str, Any]:
    """CloudFormation (JSON) for the responder role in a member account, trusted by the worker's role."""
    settings = get_settings()
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "irflow responder role: lets the irflow worker in the security account contain resources "
        "in this account. Generated by `irflow policy --member-template`; deploy with a StackSet.",
        "Parameters": {
            "SecurityAccountId": {
                "Type": "String",
                "AllowedPattern": "^[0-9]{12}$",
                "Description": "the account the irflow worker runs in",
            },
            "WorkerRoleName": {
                "Type": "String",
                "Default": "irflow-worker",
                "Description": "name of the worker's role in the security account",
            },
            "ExternalId": {
                "Type": "String",
                "Default": "",
                "Description": "IRFLOW_MEMBER_EXTERNAL_ID, if set",
            },
        },
        "Conditions": {"HasExternalId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]}},
        "Resources": {
            "ResponderRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": settings.member_role_name,
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": {"Fn::Sub": WORKER_ROLE_ARN}},
                                "Action": "sts:AssumeRole",
                                "Condition": {
                                    "Fn::If": [
                                        "HasExternalId",
                                        {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
                                        {"Ref": "AWS::NoValue"},
                                    ]
                                },
                            }
                        ],
                    },
                    "Policies": [{"PolicyName": "irflow-responder", "PolicyDocument": member_policy()}],
                    "Tags": [{"Key": "irflow:component", "Value": "responder"}],
                },
            }
        },
        "Outputs": {"ResponderRoleArn": {"Value": {"Fn::GetAtt": ["ResponderRole", "Arn"]}}},
    }
