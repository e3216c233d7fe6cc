"""Each activity declares the IAM actions it uses: record every AWS call it really makes and compare.

The worker policy in infra/ is generated from those declarations, so an undeclared call is an
AccessDenied waiting to happen in a real account (moto allows everything and would never tell).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

import activities
from activities.aws import registered_activities, reset_clients
from activities.postconditions import POSTCONDITIONS
from activities.snapshots import SnapshotStep
from irflow.devstack import moto_fidelity_findings, moto_fidelity_lambda, moto_fidelity_rds
from irflow.devstack.demo import sample_access_key_finding, sample_finding
from irflow.devstack.demo_lambda import seed_lambda_function
from irflow.devstack.demo_rds import seed_aurora_cluster, seed_rds_instance
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.finding import FindingSource, parse_guardduty
from irflow.models.iam import IamRoleStepInput, IamRoleTarget, IamUserStepInput, IamUserTarget
from irflow.models.incident import IncidentState, ManifestInput, NotifyInput, RawFindingInput, TriageInput
from irflow.models.lambda_function import LambdaStepInput, LambdaTarget
from irflow.models.postconditions import ChangeQuery
from irflow.models.rds import DbStepInput, DbTarget
from irflow.models.s3 import BucketStepInput, BucketTarget
from irflow.models.settings import get_settings
from irflow.models.source_findings import (
    LinkedNotifyInput,
    NotificationSubject,
    SourceFinding,
    SourceFindingsUpdate,
    Verdict,
    source_finding,
)
from tests.support import member_session
from workflows.activity_options import activity_name
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS
from workflows.iam_role_playbook import IAM_ROLE_CONTAINMENT_STEPS
from workflows.iam_user_playbook import IAM_USER_CONTAINMENT_STEPS
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS, LAMBDA_ERADICATION_STEPS
from workflows.playbook import ContainmentStep
from workflows.rds_playbook import RDS_CONTAINMENT_STEPS
from workflows.s3_bucket_playbook import S3_CONTAINMENT_STEPS

INCIDENT_ID = "inc-iam-0001"
ALLOW_S3_READ = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::demo-*/*"}],
}

# IAM's service prefix where it differs from botocore's service name.
IAM_PREFIX = {"elbv2": "elasticloadbalancing"}

# Operations whose IAM action has another name (AWS's "Actions, resources, and condition keys" pages).
RENAMED = {
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "GetObjectLockConfiguration"): "GetBucketObjectLockConfiguration",
    ("s3", "PutObjectLockConfiguration"): "PutBucketObjectLockConfiguration",
    ("s3", "GetBucketEncryption"): "GetEncryptionConfiguration",
    ("s3", "PutBucketEncryption"): "PutEncryptionConfiguration",
    ("s3", "GetPublicAccessBlock"): "GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "PutBucketPublicAccessBlock",
    ("s3", "DeletePublicAccessBlock"): "PutBucketPublicAccessBlock",
    ("s3", "DeleteBucketTagging"): "PutBucketTagging",
}
# "No permissions are required to perform this operation" (STS API reference): the worker asks who it is
# to tell the security account from member accounts.
NEEDS_NO_PERMISSION = {("sts", "GetCallerIdentity")}
# Made by activities.aws when an activity reaches another account (the member or forensic role): the worker's
# policy grants sts:AssumeRole on those roles by name, not through an activity's declaration.
MADE_BY_THE_DOORWAY = {("sts", "AssumeRole")}
FORENSIC_ACCOUNT = "222233334444"
# Reading or deleting a specific version needs the *Version action instead.
VERSIONED = {"GetObject": "GetObjectVersion", "HeadObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion"}


def iam_actions_for(service: str, operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions AWS checks for one API call, including those its parameters imply."""
    prefix = IAM_PREFIX.get(service, service)
    if prefix == "s3" and params.get("VersionId") and operation in VERSIONED:
        name = VERSIONED[operation]
    else:
        name = RENAMED.get((prefix, operation), operation)
    actions = {f"{prefix}:{name}"}
    if prefix == "s3" and operation in ("PutObject", "CopyObject"):
        if params.get("ObjectLockMode") or params.get("ObjectLockRetainUntilDate"):
            actions.add("s3:PutObjectRetention")
        if params.get("ObjectLockLegalHoldStatus"):
            actions.add("s3:PutObjectLegalHold")
        if params.get("ServerSideEncryption") == "aws:kms":
            actions.add("kms:GenerateDataKey")
    if prefix == "ec2" and params.get("TagSpecifications"):
        actions.add("ec2:CreateTags")  # tag-on-create is authorised as CreateTags too
    if prefix == "rds" and operation.startswith("Create") and params.get("Tags"):
        actions.add("rds:AddTagsToResource")  # RDS authorises tags given on create as AddTagsToResource
    if prefix == "ec2" and operation in ("AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation"):
        actions.add("iam:PassRole")
    return actions


class CallRecorder:
    """Collects, per running activity, the IAM actions of every AWS call made through boto3."""

    def __init__(self) -> None:
        self.running: str | None = None
        self.actions: dict[str, set[str]] = defaultdict(set)
        self.calls: dict[str, list[str]] = defaultdict(list)

    def on_call(self, params: dict[str, Any], model, **_: Any) -> None:
        if self.running is None:
            return
        service = model.service_model.service_name
        if (service, model.name) in NEEDS_NO_PERMISSION | MADE_BY_THE_DOORWAY:
            return
        self.calls[self.running].append(f"{service}.{model.name}")
        self.actions[self.running] |= iam_actions_for(service, model.name, params)

    @contextmanager
    def during(self, activity_name: str) -> Iterator[None]:
        self.running = activity_name
        try:
            yield
        finally:
            self.running = None


@pytest.fixture
def recorder(workload, monkeypatch) -> Iterator[CallRecorder]:
    """Every boto3 client made from now on (activities.aws caches its own) reports its calls."""
    recording = CallRecorder()
    make_client = boto3.session.Session.client

    def client(self, *args, **kwargs):
        made = make_client(self, *args, **kwargs)
        made.meta.events.register("before-parameter-build", recording.on_call)
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    reset_clients()
    yield recording
    reset_clients()


def exercise_every_activity(workload, monkeypatch, recorder: CallRecorder) -> None:
    """Walk an incident through every branch the demo workload allows, each activity under the recorder."""
    names = {fn: name for name, (fn, _) in registered_activities().items()}
    by_name = {name: fn for fn, name in names.items()}

    def run(name: str, argument: Any) -> Any:
        with recorder.during(name):
            return by_name[name](argument)

    def run_steps(steps: list[ContainmentStep], step_input: Any, undo: bool = False) -> None:
        """Containment steps (or their undos) as the playbook runs them: each on the argument it makes."""
        for containment in steps:
            run(containment.undo_name if undo else containment.name, containment.argument(step_input))

    def run_checks(steps: list[ContainmentStep], step_input: Any) -> None:
        """The postcondition check of every step with an undo (activities.postconditions), on the step's argument."""
        for containment in steps:
            if containment.undo is not None:
                run(POSTCONDITIONS[containment.name].__name__, containment.argument(step_input))

    target = Ec2Target(
        incident_id=INCIDENT_ID,
        account_id=workload.account_id,
        region=workload.region,
        instance_id=workload.instance_id,
    )
    first_look = run("look_at_instance", target)  # what the playbook reads first; the whole context is the same
    enriched = run("enrich_instance_context", Ec2StepInput(target=target, prior=first_look))
    prior = run("describe_instance_context", target)
    assert enriched.model_dump(exclude={"captured_at"}) == prior.model_dump(exclude={"captured_at"})
    step = Ec2StepInput(target=target, prior=prior, issued_before=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC))
    steps, undos = list(EC2_CONTAINMENT_STEPS), list(reversed(EC2_CONTAINMENT_STEPS))
    run_steps(steps, step)
    run_checks(steps, step)  # every check holding
    # Someone loosens the quarantine group: isolating again must tighten it (revoking ingress).
    ec2 = boto3.client("ec2", region_name=workload.region)
    quarantine = run("isolate_network", step).detail["quarantine_groups"][workload.vpc_id]
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    ec2.authorize_security_group_ingress(GroupId=quarantine, IpPermissions=[ssh])
    run_checks(steps, step)  # the network check finding drift
    since = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    run(
        "changes_to",
        ChangeQuery(account_id=workload.account_id, region=workload.region, resources=[quarantine], since=since),
    )
    run_steps(steps, step)  # the look-and-do-nothing branches, then the undos
    run_steps(undos, step, undo=True)
    run_steps(undos, step, undo=True)

    # With a quarantine profile the profile is swapped (and swapped back) rather than removed.
    iam = boto3.client("iam", region_name=workload.region)
    iam.create_instance_profile(InstanceProfileName="irflow-quarantine-profile")
    monkeypatch.setenv("IRFLOW_QUARANTINE_INSTANCE_PROFILE", "irflow-quarantine-profile")
    get_settings.cache_clear()
    for name in ("replace_instance_profile", "restore_instance_profile"):
        run(name, step)

    raw = sample_finding(workload.instance_id, workload.account_id, workload.region)
    finding = parse_guardduty(raw).finding
    stored = [run("store_raw_finding", RawFindingInput(incident_id=INCIDENT_ID, finding_id=finding.id, raw=raw))]
    snapshots = run("snapshot_volumes", step)
    run("snapshot_volumes", step)
    forensic_key = member_session(FORENSIC_ACCOUNT, workload.region).client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("IRFLOW_FORENSIC_ACCOUNT_ID", FORENSIC_ACCOUNT)
    monkeypatch.setenv("IRFLOW_FORENSIC_KMS_KEY_ID", forensic_key)
    get_settings.cache_clear()
    digested = [run("digest_snapshot", SnapshotStep(target=target, snapshot=s)) for s in snapshots]
    run("copy_snapshot_to_forensic_account", SnapshotStep(target=target, snapshot=digested[0]))
    run("copy_snapshot_to_forensic_account", SnapshotStep(target=target, snapshot=digested[0]))
    monkeypatch.setenv("IRFLOW_FORENSIC_KEEP_ORIGINAL", "false")
    get_settings.cache_clear()
    run("copy_snapshot_to_forensic_account", SnapshotStep(target=target, snapshot=digested[1]))
    for name in ("IRFLOW_FORENSIC_ACCOUNT_ID", "IRFLOW_FORENSIC_KMS_KEY_ID", "IRFLOW_FORENSIC_KEEP_ORIGINAL"):
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    stored.append(run("collect_instance_metadata", step))
    stored.append(run("collect_console_output", target))
    stored.append(run("acquire_memory", target).evidence)
    run("acquire_memory", target)
    run("write_manifest", ManifestInput(incident_id=INCIDENT_ID, evidence=stored[:1]))
    run("write_manifest", ManifestInput(incident_id=INCIDENT_ID, evidence=stored, snapshots=snapshots))
    state = IncidentState(
        incident_id=INCIDENT_ID,
        playbook="ec2-instance",
        severity=finding.severity,
        finding=finding,
        resource_id=workload.instance_id,
        context=prior,
        evidence=stored,
        snapshots=snapshots,
        received_at=datetime.now(UTC),
    )
    run("write_report", state)
    for channel in ("team", "escalation"):
        run("publish_notification", NotifyInput(incident_id=INCIDENT_ID, channel=channel, subject="s", body={}))
    about = NotificationSubject(account_id=workload.account_id, region=workload.region)
    run("publish_notification", LinkedNotifyInput(incident_id=INCIDENT_ID, subject="s", body={}, about=about))
    moto_fidelity_findings.apply()
    detector = boto3.client("guardduty", region_name=workload.region).create_detector(Enable=True)["DetectorId"]
    told = source_finding(finding).model_copy(update={"detector_id": detector})
    hub = SourceFinding(
        source=FindingSource.SECURITY_HUB,
        id="hub-1",
        account_id=workload.account_id,
        region=workload.region,
        product_arn=f"arn:aws:securityhub:{workload.region}::product/aws/macie",
    )
    for verdict in (Verdict.CONTAINED, Verdict.FALSE_POSITIVE):
        run(
            "update_source_findings",
            SourceFindingsUpdate(incident_id=INCIDENT_ID, verdict=verdict, findings=[told, hub]),
        )

    run("stop_instance", target)
    run("stop_instance", target)
    run("protect_instance", step)  # terminating must first lift the protection
    run("terminate_instance", target)
    run("terminate_instance", target)

    # IAM user credentials: found by key only, every step twice, every undo twice, then eradication.
    user_target = IamUserTarget(
        incident_id=INCIDENT_ID,
        account_id=workload.account_id,
        region=workload.region,
        access_key_id=workload.access_key_id,
    )
    user_prior = run("describe_iam_user_context", user_target)
    user_step = IamUserStepInput(
        target=user_target.model_copy(update={"user_name": user_prior.user_name}),
        prior=user_prior,
        issued_before=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
    )
    user_steps = list(IAM_USER_CONTAINMENT_STEPS)
    run_steps(user_steps + user_steps, user_step)
    run_checks(user_steps, user_step)
    run_steps(list(reversed(user_steps)) * 2, user_step, undo=True)
    run("collect_iam_user_evidence", user_step)
    run("remove_user_credentials", user_step)
    run("remove_user_credentials", user_step)

    # S3 bucket: described, each step twice, each undo twice, evidence.
    bucket_target = BucketTarget(
        incident_id=INCIDENT_ID, account_id=workload.account_id, region=workload.region, bucket=workload.public_bucket
    )
    bucket_step = BucketStepInput(target=bucket_target, prior=run("describe_bucket_context", bucket_target))
    bucket_steps = list(S3_CONTAINMENT_STEPS)
    run_steps(bucket_steps + bucket_steps, bucket_step)
    run_checks(bucket_steps, bucket_step)
    run_steps(list(reversed(bucket_steps)) * 2, bucket_step, undo=True)
    run("collect_bucket_evidence", bucket_step)

    # IAM role sessions: found by the principal's role id, each step twice, each undo twice, evidence.
    role_id = iam.get_role(RoleName=workload.role_name)["Role"]["RoleId"]
    role_target = IamRoleTarget(
        incident_id=INCIDENT_ID,
        account_id=workload.account_id,
        region=workload.region,
        principal_id=f"{role_id}:{workload.instance_id}",
    )
    role_prior = run("describe_iam_role_context", role_target)
    role_step = IamRoleStepInput(
        target=role_target.model_copy(update={"role_name": role_prior.role_name}),
        prior=role_prior,
        issued_before=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
    )
    iam.put_role_policy(RoleName=workload.role_name, PolicyName="app", PolicyDocument=json.dumps(ALLOW_S3_READ))
    role_step = role_step.model_copy(update={"prior": run("describe_iam_role_context", role_step.target)})
    role_steps = list(IAM_ROLE_CONTAINMENT_STEPS)
    run_steps(role_steps + role_steps, role_step)
    run_checks(role_steps, role_step)
    run_steps(list(reversed(role_steps)) * 2, role_step, undo=True)
    run("collect_iam_role_evidence", role_step)

    # Lambda function: described, each step twice, each undo twice (with and without reserved concurrency
    # to restore), evidence with the code package, then eradication twice (the second finds nothing to do).
    moto_fidelity_lambda.apply()
    function_steps, function_undos = list(LAMBDA_CONTAINMENT_STEPS), list(reversed(LAMBDA_CONTAINMENT_STEPS))
    for reserved, name in ((25, "demo"), (None, "plain")):
        demo = seed_lambda_function(workload.account_id, workload.region, name=name, reserved_concurrency=reserved)
        function_target = LambdaTarget(
            incident_id=INCIDENT_ID,
            account_id=workload.account_id,
            region=workload.region,
            function_name=demo.function_name,
        )
        function_step = LambdaStepInput(
            target=function_target,
            prior=run("describe_lambda_context", function_target),
            issued_before=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
        )
        run_steps(function_steps + function_steps, function_step)
        run_checks(function_steps, function_step)
        run_steps(function_undos + function_undos, function_step, undo=True)
        run_steps(function_steps, function_step)
    run("collect_lambda_evidence", function_step)
    run("collect_lambda_code", function_step)
    for eradication in LAMBDA_ERADICATION_STEPS + LAMBDA_ERADICATION_STEPS:
        run(activity_name(eradication), function_step)

    # RDS: a lone instance and an Aurora cluster, each described, each step twice, each undo twice, evidence,
    # then stopped twice (the second finds it stopped).
    moto_fidelity_rds.apply()
    db_steps = list(RDS_CONTAINMENT_STEPS)
    db_undos = [c for c in reversed(RDS_CONTAINMENT_STEPS) if c.undo]
    for seed in (seed_rds_instance, seed_aurora_cluster):
        database = seed(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)
        db_target = DbTarget(
            incident_id=INCIDENT_ID,
            account_id=workload.account_id,
            region=workload.region,
            db_instance_identifier=database.db_instance_id,
            db_user={"user": "orders_app"},
        )
        db_step = DbStepInput(target=db_target, prior=run("describe_db_instance_context", db_target))
        run_steps(db_steps + db_steps, db_step)
        run_checks(db_steps, db_step)
        run_steps(db_undos + db_undos, db_step, undo=True)
        run("collect_db_instance_evidence", db_step)
        run("stop_db_instance", db_step)
        run("stop_db_instance", db_step)

    # Triage: describe what a finding names, whatever the service (errors are evidence too).
    leaked = parse_guardduty(sample_access_key_finding(workload.iam_user, workload.access_key_id)).finding
    run("describe_related_resources", TriageInput(incident_id=INCIDENT_ID, finding=leaked))
    eks = leaked.model_copy(
        update={"resource": leaked.resource.model_copy(update={"resource_type": "EKSCluster", "resource_id": "c1"})}
    )
    run("describe_related_resources", TriageInput(incident_id=INCIDENT_ID, finding=eks))

    # Readiness: every AWS check, in the account made ready and in a member account.
    from activities.readiness import readiness_plan, readiness_scopes
    from irflow.devstack.readiness import make_ready

    for name, value in make_ready(workload).settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("IRFLOW_ACCOUNTS", "111122223333")
    get_settings.cache_clear()
    for scope, checks in readiness_plan(readiness_scopes(get_settings())):
        for check in checks:
            run(check.__name__, scope)


def test_every_activity_calls_only_what_it_declares(workload, monkeypatch, recorder):
    exercise_every_activity(workload, monkeypatch, recorder)
    declared = activities.required_iam_actions()

    assert sorted(set(declared) - set(recorder.actions)) == [], "registered activities this test never ran"
    undeclared = {
        name: sorted(used - set(declared[name]))
        for name, used in recorder.actions.items()
        if used - set(declared[name])
    }
    assert undeclared == {}, f"AWS calls not covered by the activity's iam_actions: {undeclared}"


def test_the_recorder_sees_calls_made_through_cached_clients(workload, recorder):
    from activities.aws import client

    with recorder.during("probe"):
        client("ec2", workload.region).describe_instances(InstanceIds=[workload.instance_id])
        client("s3", None).head_bucket(Bucket=workload.evidence_bucket)
        client("elbv2", workload.region).describe_target_groups()
    assert recorder.actions["probe"] == {
        "ec2:DescribeInstances",
        "s3:ListBucket",
        "elasticloadbalancing:DescribeTargetGroups",
    }


@pytest.mark.parametrize(
    "service, operation, params, expected",
    [
        ("s3", "HeadObject", {"Bucket": "b", "Key": "k"}, {"s3:GetObject"}),
        ("s3", "DeleteObject", {"Bucket": "b", "Key": "k", "VersionId": "v"}, {"s3:DeleteObjectVersion"}),
        (
            "s3",
            "PutObject",
            {"ObjectLockMode": "COMPLIANCE", "ServerSideEncryption": "aws:kms"},
            {"s3:PutObject", "s3:PutObjectRetention", "kms:GenerateDataKey"},
        ),
        ("elbv2", "RegisterTargets", {}, {"elasticloadbalancing:RegisterTargets"}),
        ("ec2", "CreateSnapshot", {"TagSpecifications": [{}]}, {"ec2:CreateSnapshot", "ec2:CreateTags"}),
        ("ec2", "AssociateIamInstanceProfile", {}, {"ec2:AssociateIamInstanceProfile", "iam:PassRole"}),
        ("rds", "CreateDBSnapshot", {"Tags": [{}]}, {"rds:CreateDBSnapshot", "rds:AddTagsToResource"}),
        ("rds", "ModifyDBInstance", {}, {"rds:ModifyDBInstance"}),
    ],
)
def test_operations_map_to_the_documented_iam_actions(service, operation, params, expected):
    assert iam_actions_for(service, operation, params) == expected


def test_declared_actions_are_well_formed():
    known = {
        "ebs",
        "cloudtrail",
        "ec2",
        "autoscaling",
        "elasticloadbalancing",
        "iam",
        "s3",
        "ssm",
        "sns",
        "kms",
        "sts",
        "eks",
        "ecs",
        "lambda",
        "rds",
        # readiness checks and closing the loop
        "cloudformation",
        "events",
        "guardduty",
        "securityhub",
        "sqs",
    }
    malformed = {
        name: [
            a for a in actions if not re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z0-9]+", a) or a.split(":")[0] not in known
        ]
        for name, actions in activities.required_iam_actions().items()
    }
    assert {name: bad for name, bad in malformed.items() if bad} == {}
    assert all(actions for actions in activities.required_iam_actions().values())
