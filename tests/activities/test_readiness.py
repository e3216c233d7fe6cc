"""Readiness on the AWS side, as `irflow preflight` and the scheduled round see it: a ready account (moto, made
ready by irflow/devstack/readiness.py) is all green, and breaking one thing at a time fails exactly that check,
with a fix a person can follow, every other result unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable

import boto3
import pytest

from activities.aws import registered_activities
from activities.readiness import (
    AWS_CHECKS,
    GLOBAL_CHECKS,
    checks_for,
    readiness_plan,
    readiness_scopes,
    run_all_aws_checks,
    run_aws_checks,
)
from irflow.devstack.demo import DemoWorkload
from irflow.devstack.readiness import TRAIL, WORKER_POLICY, WORKER_ROLE, ReadyAccount
from irflow.models.readiness import CheckResult, CheckStatus, ReadinessScope
from irflow.models.settings import IrflowSettings, get_settings
from tests.activities.test_aws_iam_declarations import CallRecorder

# moto's CloudFormation skips AWS::SQS::QueuePolicy (deploy_intake_stack sets the policy itself).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.+QueuePolicy:UserWarning")
MEMBER, OTHER_MEMBER, SECURITY = "111122223333", "444455556666", "123456789012"


def by_key(results: list[CheckResult]) -> dict[str, CheckResult]:
    keyed = {r.key: r for r in results}
    assert len(keyed) == len(results), "two results of one check in one place"
    return keyed


def test_a_ready_account_is_all_green(ready, workload):
    results = run_all_aws_checks()

    assert [r.check for r in results] == [c.check_id for c in checks_for(readiness_scopes(get_settings())[0], True)]
    assert {r.check for r in results} == {c.check_id for c in AWS_CHECKS} - {
        "member_role.assumable",
        "member_role.permissions",  # no member account in the demo
    }
    not_green = [(r.check, r.status.value, r.evidence) for r in results if r.status != CheckStatus.PASS]
    assert not_green == []
    assert all(r.evidence and not r.fix for r in results)
    regional = [r for r in results if r.check not in {c.check_id for c in GLOBAL_CHECKS}]
    assert {(r.account_id, r.region) for r in regional} == {("", workload.region)}
    # the worker's permissions were compared with the role's policies (moto has no simulator), and it says so
    [permissions] = [r for r in results if r.check == "worker.permissions"]
    assert WORKER_ROLE in permissions.evidence and "comparison with the role's policies" in permissions.evidence


def _without_one_permission(workload: DemoWorkload, ready: ReadyAccount) -> tuple[str, list[str]]:
    iam = boto3.client("iam", region_name=workload.region)
    policy = iam.get_role_policy(RoleName=WORKER_ROLE, PolicyName=WORKER_POLICY)["PolicyDocument"]
    [statement] = [s for s in policy["Statement"] if "ec2:ModifyNetworkInterfaceAttribute" in s["Action"]]
    statement["Action"].remove("ec2:ModifyNetworkInterfaceAttribute")
    iam.put_role_policy(RoleName=WORKER_ROLE, PolicyName=WORKER_POLICY, PolicyDocument=json.dumps(policy))
    return "ec2:ModifyNetworkInterfaceAttribute", ["ec2:ModifyNetworkInterfaceAttribute: not allowed"]


def _default_retention_suspended(workload: DemoWorkload, ready: ReadyAccount) -> tuple[str, list[str]]:
    boto3.client("s3", region_name=workload.region).put_object_lock_configuration(
        Bucket=workload.evidence_bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    return "no default retention", []


def _rule_deleted(name_of: Callable[[ReadyAccount], str]) -> Callable[[DemoWorkload, ReadyAccount], tuple]:
    def breaking(workload: DemoWorkload, ready: ReadyAccount) -> tuple[str, list[str]]:
        events = boto3.client("events", region_name=workload.region)
        rule = name_of(ready)
        targets = [t["Id"] for t in events.list_targets_by_rule(Rule=rule)["Targets"]]
        events.remove_targets(Rule=rule, Ids=targets)
        events.delete_rule(Name=rule)
        return f"rule {rule} is gone", [f"{rule}: gone"]

    return breaking


def _key_disabled(workload: DemoWorkload, ready: ReadyAccount) -> tuple[str, list[str]]:
    boto3.client("kms", region_name=workload.region).disable_key(KeyId=workload.kms_key_id)
    return f"{workload.kms_key_id}: Disabled", ["IRFLOW_EVIDENCE_KMS_KEY_ID: Disabled"]


def _trail_stopped(workload: DemoWorkload, ready: ReadyAccount) -> tuple[str, list[str]]:
    boto3.client("cloudtrail", region_name=workload.region).stop_logging(Name=TRAIL)
    return "not logging", [f"{ready.trail_arn}: not logging"]


def _guardduty_disabled(workload: DemoWorkload, ready: ReadyAccount) -> tuple[str, list[str]]:
    guardduty = boto3.client("guardduty", region_name=workload.region)
    guardduty.update_detector(DetectorId=ready.detector_id, Enable=False)
    return "DISABLED", []


@pytest.mark.parametrize(
    "breaking, check, fix_names",
    [
        pytest.param(_default_retention_suspended, "evidence_bucket.object_lock", "put-object-lock-configuration"),
        pytest.param(
            _rule_deleted(lambda r: r.intake.guardduty_rule_name), "intake.rules", "aws events put-rule", id="rule"
        ),
        pytest.param(
            _rule_deleted(lambda r: r.intake.cloudtrail_rule_name),
            "cloudtrail.eventbridge",
            "aws events put-targets",
            id="cloudtrail-rule",
        ),
        pytest.param(_key_disabled, "kms.keys", "aws kms enable-key"),
        pytest.param(_without_one_permission, "worker.permissions", "irflow policy > worker-policy.json"),
        pytest.param(_trail_stopped, "cloudtrail.trail", "aws cloudtrail start-logging"),
        pytest.param(_guardduty_disabled, "guardduty.enabled", "--enable"),
    ],
)
def test_breaking_one_thing_fails_exactly_its_check_with_a_fix(ready, workload, breaking, check, fix_names):
    before = by_key(run_all_aws_checks())
    assert {r.status for r in before.values()} == {CheckStatus.PASS}

    found, problems = breaking(workload, ready)
    after = by_key(run_all_aws_checks())

    changed = sorted(key for key in before if after[key] != before[key])
    assert [after[key].check for key in changed] == [check]
    [result] = [after[key] for key in changed]
    assert result.status == CheckStatus.FAIL and result.required
    assert found in result.evidence
    assert fix_names in result.fix
    assert result.problems == problems
    assert by_key(run_all_aws_checks()) == after, "what is wrong is said the same way each round"


def test_an_unreadable_thing_is_unknown_and_the_round_goes_on(ready, workload):
    """AccessDenied is not a finding: the check says it could not look (tests/activities/test_readiness_common.py
    has each kind of error); here the worker may not read the queue, and only the checks reading it say so."""
    from botocore.stub import Stubber

    from activities.aws import client

    with Stubber(client("sqs", workload.region)) as sqs:
        for _ in range(2):  # intake.redrive, intake.queue_policy
            sqs.add_client_error("get_queue_attributes", "AccessDenied", "not for you", 403)
        results = by_key(run_all_aws_checks())
    unknown = {r.check: r.evidence for r in results.values() if r.status == CheckStatus.UNKNOWN}
    assert sorted(unknown) == ["intake.queue_policy", "intake.redrive"]
    assert all("not allowed to look" in e and "AccessDenied" in e for e in unknown.values())
    assert all(r.status == CheckStatus.PASS for r in results.values() if r.check not in unknown)


def test_scopes_are_the_security_account_first_then_each_member_in_each_region(monkeypatch):
    settings = IrflowSettings(
        accounts=[SECURITY, MEMBER, OTHER_MEMBER, MEMBER],
        security_account_id=SECURITY,
        readiness_regions=["eu-west-1", "us-east-1"],
    )
    assert [(s.account_id, s.region) for s in readiness_scopes(settings)] == [
        ("", "eu-west-1"),
        ("", "us-east-1"),
        (MEMBER, "eu-west-1"),
        (MEMBER, "us-east-1"),
        (OTHER_MEMBER, "eu-west-1"),
        (OTHER_MEMBER, "us-east-1"),
    ]
    # nothing configured: the worker's own account in the evidence region, else the environment's region
    assert readiness_scopes(IrflowSettings(evidence_region="eu-central-1")) == [
        ReadinessScope(account_id="", region="eu-central-1")
    ]
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    assert readiness_scopes(IrflowSettings()) == [ReadinessScope(account_id="", region="ap-southeast-2")]


def test_the_plan_runs_global_checks_once_intake_in_the_security_account_and_member_roles_in_members():
    scopes = readiness_scopes(IrflowSettings(accounts=[MEMBER], readiness_regions=["eu-west-1", "us-east-1"]))
    plan = {(s.account_id, s.region): {c.check_id for c in checks} for s, checks in readiness_plan(scopes)}
    everywhere = {"guardduty.enabled", "guardduty.publishing_frequency", "cloudtrail.trail", "forensic_egress.vpcs"}
    intake = {"intake.stack", "intake.rules", "intake.redrive", "intake.queue_policy", "cloudtrail.eventbridge"}
    once = {c.check_id for c in GLOBAL_CHECKS}
    assert once == {
        "evidence_bucket.versioning",
        "evidence_bucket.object_lock",
        "evidence_bucket.encryption",
        "evidence_bucket.public_access",
        "kms.keys",
        "sns.topics",
        "worker.permissions",
    }
    members = {"member_role.assumable", "member_role.permissions"}
    assert plan == {
        ("", "eu-west-1"): everywhere | intake | once,
        ("", "us-east-1"): everywhere | intake,
        (MEMBER, "eu-west-1"): everywhere | members,
        (MEMBER, "us-east-1"): everywhere | members,
    }
    # display order is AWS_CHECKS' own
    first = readiness_plan(scopes)[0][1]
    assert list(first) == [c for c in AWS_CHECKS if c in first]


def test_every_check_is_a_registered_activity_declaring_only_read_actions():
    registry = registered_activities()
    for check in AWS_CHECKS:
        assert check.__name__ in registry, check.check_id
        _, actions = registry[check.__name__]
        verbs = {a.split(":", 1)[1] for a in actions}
        assert all(v.startswith(("Get", "List", "Describe", "Simulate")) for v in verbs), (check.check_id, actions)
    assert len({c.check_id for c in AWS_CHECKS}) == len(AWS_CHECKS)


def test_every_check_calls_only_what_it_declares(ready, workload, monkeypatch):
    """Each check run under a recorder of the IAM actions its AWS calls need (as every activity is in
    tests/activities/test_aws_iam_declarations.py), in the security account and in a member account."""
    recording = CallRecorder()
    make_client = boto3.session.Session.client

    def recorded_client(self, *args, **kwargs):
        made = make_client(self, *args, **kwargs)
        made.meta.events.register("before-parameter-build", recording.on_call)
        return made

    monkeypatch.setattr(boto3.session.Session, "client", recorded_client)
    from activities.aws import reset_clients

    reset_clients()
    monkeypatch.setenv("IRFLOW_ACCOUNTS", MEMBER)
    get_settings.cache_clear()
    for scope, checks in readiness_plan(readiness_scopes(get_settings())):
        for check in checks:
            with recording.during(check.__name__):
                [result] = run_aws_checks(scope, checks=[check])
            assert result.status != CheckStatus.UNKNOWN or scope.account_id, (result.check, result.evidence)
    declared = {name: set(actions) for name, (_, actions) in registered_activities().items()}
    undeclared = {
        name: sorted(used - declared[name]) for name, used in recording.actions.items() if used - declared[name]
    }
    assert {name: missing for name, missing in undeclared.items() if missing} == {}
    assert {c.__name__ for c in AWS_CHECKS} <= set(recording.actions)
