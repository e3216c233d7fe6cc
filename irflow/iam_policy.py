"""IAM for the worker, generated from what each activity declares (never guessed).

- `worker_policy()`: the worker's role in the security account: every declared action, plus assuming
  the responder role in member accounts.
- `member_policy()` and `member_role_template()`: the responder role in each member account (a
  CloudFormation template for a StackSet): the actions that touch resources, without the evidence and
  notification writes, which only ever happen in the security account. The template also makes the
  quarantine instance profile (`quarantine_role_policy()`) containment swaps onto an instance.

Actions are granted on `"Resource": "*"` except where AWS lets a policy name what they may touch (`scoped`):
evidence objects only under `incidents/` in the evidence bucket, SSM commands only with the capture
document and only on instances irflow has tagged with an incident, roles passed only to EC2.
"""

from __future__ import annotations

import re
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


# An instance role's trust: EC2 (the instance's credentials) may assume it, nobody else.
EC2_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

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


# Run Command through the SSM agent, and nothing more of what AmazonSSMManagedInstanceCore grants.
QUARANTINE_SSM_CORE = (
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:DescribeAssociation",
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
# IAM's `aws:userid` for a role on an EC2 instance is `<role id>:<instance id>`: each instance's own folder.
QUARANTINE_UPLOAD_FOLDER = "incidents/*/memory/${aws:userid}/*"


def quarantine_role_policy(*, bucket: str | None = None, kms_key_id: str | None = None) -> dict[str, Any]:
    """The quarantine profile's role: what an isolated instance may still do, assuming an attacker holds it.

    - SSM core (QUARANTINE_SSM_CORE): the agent registers and heartbeats (UpdateInstanceInformation), reads
      its associations and documents at start-up, and receives Run Command and replies through ec2messages and
      the ssmmessages channels. That is all the capture command needs. Left out of the managed policy:
      ssm:GetParameter(s) (the account's parameters, SecureStrings included, would be the attacker's to read),
      inventory, compliance, Distributor and patching (PutInventory, PutComplianceItems,
      PutConfigurePackageResult, GetManifest, GetDeployablePatchSnapshotForInstance), and any wildcard.
    - `s3:PutObject` of objects under `incidents/*/memory/${aws:userid}/` in the evidence bucket (`bucket`,
      default IRFLOW_EVIDENCE_BUCKET or the placeholder): the instance writes its memory image and SSM's
      command output into the folder named after its own session and nowhere else; it reads nothing, and
      cannot overwrite another instance's evidence. Multipart uploads (a memory image is large) are
      authorised by PutObject too.
    - With IRFLOW_EVIDENCE_KMS_KEY_ID, that key, through S3 only (`kms:ViaService`): the bucket's SSE-KMS
      needs kms:GenerateDataKey to start an upload and kms:Decrypt to add parts to a multipart one (S3 user
      guide, "Multipart upload API and permissions"). Decrypting through S3 reads nothing without
      s3:GetObject, which the role does not have.
    """
    settings = get_settings()
    partition = settings.aws_partition
    bucket = bucket or settings.evidence_bucket or EVIDENCE_BUCKET_PLACEHOLDER
    statements = [
        _allow("IrflowQuarantineSsmCore", sorted(QUARANTINE_SSM_CORE), "*"),
        _allow(
            "IrflowQuarantineOwnMemoryImage",
            ["s3:PutObject"],
            f"arn:{partition}:s3:::{bucket}/{QUARANTINE_UPLOAD_FOLDER}",
        ),
    ]
    key = kms_key_id or settings.evidence_kms_key_id
    if key:
        arn = key if key.startswith("arn:") else f"arn:{partition}:kms:*:*:key/{key}"
        statements.append(
            _allow(
                "IrflowQuarantineEvidenceKey",
                ["kms:Decrypt", "kms:GenerateDataKey"],
                arn,
                {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            )
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _substituted(value: Any) -> Any:
    """`value` for a CloudFormation template: each string naming a template parameter (`${EvidenceBucket}`)
    in `Fn::Sub`, its IAM policy variables (`${aws:userid}`) escaped as `${!aws:userid}` so that CloudFormation
    leaves them for IAM."""
    if isinstance(value, dict):
        return {key: _substituted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item) for item in value]
    if isinstance(value, str) and "${" in value:
        return {"Fn::Sub": re.sub(r"\$\{(?=aws:)", "${!", value)}
    return value


def member_role_template() -> dict[str, Any]:
    """CloudFormation (JSON) for the responder role in a member account, trusted by the worker's role, and the
    quarantine instance profile (IRFLOW_QUARANTINE_INSTANCE_PROFILE, default irflow-quarantine) whose role
    may only run the capture command and upload the instance's own memory image (`quarantine_role_policy()`).
    """
    settings = get_settings()
    profile = settings.quarantine_instance_profile or "irflow-quarantine"
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "irflow responder role: lets the irflow worker in the security account contain resources "
        "in this account, and the quarantine instance profile it gives isolated instances. Generated by "
        "`irflow policy --member-template`; deploy with a StackSet.",
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
            "EvidenceBucket": {
                "Type": "String",
                "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                "Description": "the evidence bucket in the security account (IRFLOW_EVIDENCE_BUCKET): quarantined "
                "instances upload their memory images to it",
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
            },
            "QuarantineRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": profile,
                    "AssumeRolePolicyDocument": EC2_TRUST_POLICY,
                    "Policies": [
                        {
                            "PolicyName": "irflow-quarantine",
                            "PolicyDocument": _substituted(quarantine_role_policy(bucket=EVIDENCE_BUCKET_PLACEHOLDER)),
                        }
                    ],
                    "Tags": [{"Key": "irflow:component", "Value": "quarantine"}],
                },
            },
            "QuarantineInstanceProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"InstanceProfileName": profile, "Roles": [{"Ref": "QuarantineRole"}]},
            },
        },
        "Outputs": {
            "ResponderRoleArn": {"Value": {"Fn::GetAtt": ["ResponderRole", "Arn"]}},
            "QuarantineInstanceProfileName": {"Value": {"Ref": "QuarantineInstanceProfile"}},
        },
    }
