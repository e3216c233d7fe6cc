"""IAM user activities against in-process moto: the context is what the user was, each containment step twice
changes the user once and its undo restores it exactly, the exposed key alone goes Inactive, older sessions are
denied from the cut-off, eradication deletes the key and the password, and the evidence matches its hash."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from temporalio.exceptions import ApplicationError

from activities import iam_user as steps
from activities.iam import revocation_policy_name
from irflow.devstack.demo import DemoWorkload
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.iam import IamUserStepInput, IamUserTarget
from irflow.visibility import identity_hash
from tests.support import act, assert_step_contract, read_evidence, undo
from workflows.iam_user_playbook import IAM_USER_CONTAINMENT_STEPS

INCIDENT_ID = "inc-iam-user-0001"
CUTOFF = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
POLICY = revocation_policy_name(INCIDENT_ID)
OURS = {"irflow:incident-id": INCIDENT_ID, "irflow:status": "contained"}
DEPLOY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::demo-artifacts/*"}],
}
READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


def observed_user(workload: DemoWorkload) -> dict:
    """What a responder would check on the user, read straight from (moto's) IAM."""
    iam, name = boto3.client("iam"), workload.iam_user
    try:
        iam.get_login_profile(UserName=name)
        login_profile = True
    except iam.exceptions.NoSuchEntityException:
        login_profile = False
    return {
        "keys": {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]},
        "login_profile": login_profile,
        "inline_policies": {
            policy: iam.get_user_policy(UserName=name, PolicyName=policy)["PolicyDocument"]
            for policy in iam.list_user_policies(UserName=name)["PolicyNames"]
        },
        "attached_policies": sorted(
            p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        ),
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "mfa": sorted(d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]),
        "tags": {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]},
    }


def revocation_document(workload: DemoWorkload) -> dict:
    document = boto3.client("iam").get_user_policy(UserName=workload.iam_user, PolicyName=POLICY)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def _target(workload: DemoWorkload, **overrides) -> IamUserTarget:
    where = {
        "incident_id": INCIDENT_ID,
        "account_id": workload.account_id,
        "region": workload.region,
        "user_name": workload.iam_user,
        "access_key_id": workload.access_key_id,
    }
    return IamUserTarget(**{**where, **overrides})


def _step(workload: DemoWorkload, **overrides) -> IamUserStepInput:
    """The step input the playbook makes: the target, its describe step's context, the cut-off."""
    target = _target(workload, **overrides)
    return IamUserStepInput(target=target, prior=steps.describe_iam_user_context(target), issued_before=CUTOFF)


@dataclass(frozen=True)
class MoreToRecord:
    managed_policy_arn: str
    mfa_serial: str


def _give_the_user_more_to_record(workload: DemoWorkload) -> MoreToRecord:
    """A group, a managed and an inline policy, an MFA device: everything else the context lists."""
    iam, name = boto3.client("iam"), workload.iam_user
    iam.create_group(GroupName="deployers")
    iam.add_user_to_group(GroupName="deployers", UserName=name)
    managed = iam.create_policy(PolicyName="ci-read", PolicyDocument=json.dumps(READ_POLICY))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=managed)
    iam.put_user_policy(UserName=name, PolicyName="deploy-artifacts", PolicyDocument=json.dumps(DEPLOY_POLICY))
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=name, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    return MoreToRecord(managed_policy_arn=managed, mfa_serial=serial)


# --- what the user was ---


def test_the_context_records_what_containment_will_change(workload):
    more = _give_the_user_more_to_record(workload)
    prior = _step(workload).prior
    user = boto3.client("iam").get_user(UserName=workload.iam_user)["User"]
    assert (prior.user_name, prior.user_arn, prior.user_id) == (workload.iam_user, user["Arn"], user["UserId"])
    assert [(k.access_key_id, k.status) for k in prior.access_keys] == sorted(
        [(workload.access_key_id, "Active"), (workload.other_access_key_id, "Active")]
    )
    assert all(k.created is not None for k in prior.access_keys)
    assert prior.has_login_profile is True
    assert prior.tags == {"team": "platform"}
    assert prior.groups == ["deployers"]
    assert prior.attached_policies == [more.managed_policy_arn]
    assert prior.inline_policies == ["deploy-artifacts"]
    assert prior.mfa_devices == [more.mfa_serial]
    assert prior.key(workload.access_key_id).status == "Active" and prior.key("AKIANOTTHISUSERSKEY1") is None


def test_an_inactive_key_and_a_missing_password_are_recorded_as_they_are(workload):
    iam = boto3.client("iam")
    iam.update_access_key(UserName=workload.iam_user, AccessKeyId=workload.other_access_key_id, Status="Inactive")
    iam.delete_login_profile(UserName=workload.iam_user)
    prior = _step(workload).prior
    assert {k.access_key_id: k.status for k in prior.access_keys} == {
        workload.access_key_id: "Active",
        workload.other_access_key_id: "Inactive",
    }
    assert prior.has_login_profile is False


def test_a_finding_that_names_only_the_key_finds_its_user(workload):
    target = _target(workload, user_name="")
    assert steps.describe_iam_user_context(target).user_name == workload.iam_user


@pytest.mark.parametrize(
    ("user_name", "access_key_id"),
    [("no-such-user", None), ("", "AKIAEXAMPLENOBODY123")],
    ids=["missing-user", "key-of-no-user"],
)
def test_a_missing_user_is_not_found(workload, user_name, access_key_id):
    with pytest.raises(ApplicationError) as missing:
        steps.describe_iam_user_context(_target(workload, user_name=user_name, access_key_id=access_key_id))
    assert missing.value.type == NOT_FOUND and missing.value.non_retryable


def test_a_finding_naming_neither_user_nor_key_is_refused(workload):
    with pytest.raises(ApplicationError) as nameless:
        steps.describe_iam_user_context(_target(workload, user_name="", access_key_id=None))
    assert nameless.value.type == INVALID_REQUEST and nameless.value.non_retryable


@pytest.mark.parametrize(
    "overrides",
    [
        {"user_name": "alice;rm -rf /"},
        {"user_name": "alice/../admin"},
        {"user_name": "a" * 65},
        {"user_name": "", "access_key_id": "AKIA$(id)XXXXXXXXXX"},
        {"account_id": "12345678901*"},
        {"region": "us-east-1; id"},
    ],
    ids=["shell", "path", "too-long", "key", "account", "region"],
)
def test_a_name_that_iam_would_never_accept_is_refused_before_any_call(workload, overrides):
    with pytest.raises(ApplicationError) as refused:
        steps.describe_iam_user_context(_target(workload, **overrides))
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert "refused:" in str(refused.value)


def test_a_revocation_is_never_written_for_a_crafted_name_or_incident_id(workload):
    before = observed_user(workload)
    step = _step(workload)
    crafted = step.model_copy(update={"prior": step.prior.model_copy(update={"user_name": 'x","Effect":"Allow'})})
    for bad in (crafted, step.model_copy(update={"target": step.target.model_copy(update={"incident_id": "i;d"})})):
        with pytest.raises(ApplicationError) as refused:
            steps.revoke_user_sessions(bad)
        assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert observed_user(workload) == before


# --- every containment step: twice is once, its undo restores exactly ---


@pytest.mark.parametrize("containment", IAM_USER_CONTAINMENT_STEPS, ids=lambda c: c.name)
def test_each_step_twice_changes_the_user_once_and_its_undo_restores_it_exactly(workload, containment):
    assert_step_contract(containment, _step(workload), lambda: observed_user(workload))


def test_all_steps_then_all_undos_in_reverse_restore_the_user_exactly(workload):
    _give_the_user_more_to_record(workload)
    step, before = _step(workload), observed_user(workload)
    assert all(act(c, step).changed for c in IAM_USER_CONTAINMENT_STEPS)
    contained = observed_user(workload)
    assert contained["keys"] == {workload.access_key_id: "Inactive", workload.other_access_key_id: "Active"}
    # and, while contained, the keys' statuses from before (the prior-state record: test_iam_user_prior_state.py)
    keys = sorted((workload.access_key_id, workload.other_access_key_id))
    record = {f"irflow:prior:{INCIDENT_ID}": " ".join(f"{key}=Active" for key in keys)}
    assert contained["tags"] == {"team": "platform", **OURS, **record}
    assert sorted(contained["inline_policies"]) == sorted(["deploy-artifacts", POLICY])
    assert contained["login_profile"] is True, "containment keeps the password: deleting it waits for approval"
    assert (contained["groups"], contained["attached_policies"], contained["mfa"]) == (
        before["groups"],
        before["attached_policies"],
        before["mfa"],
    )
    assert [act(c, step).changed for c in IAM_USER_CONTAINMENT_STEPS] == [False] * len(IAM_USER_CONTAINMENT_STEPS)

    assert all(undo(c, step).changed for c in reversed(IAM_USER_CONTAINMENT_STEPS))
    assert observed_user(workload) == before
    assert not any(undo(c, step).changed for c in reversed(IAM_USER_CONTAINMENT_STEPS))
    assert observed_user(workload) == before


# --- each step's effect, as a responder sees it ---


def test_the_exposed_key_goes_inactive_and_the_other_key_stays_active(workload):
    result = steps.deactivate_access_key(_step(workload))
    assert result.detail == {"access_key_id": workload.access_key_id, "status": "Inactive"}
    assert observed_user(workload)["keys"] == {
        workload.access_key_id: "Inactive",
        workload.other_access_key_id: "Active",
    }


def test_a_key_inactive_before_the_incident_stays_inactive_after_the_undo(workload):
    iam = boto3.client("iam")
    iam.update_access_key(UserName=workload.iam_user, AccessKeyId=workload.access_key_id, Status="Inactive")
    step = _step(workload)
    assert steps.deactivate_access_key(step).changed is False
    assert steps.restore_access_key_status(step).changed is False
    assert observed_user(workload)["keys"][workload.access_key_id] == "Inactive", "the undo never activates a key"


@pytest.mark.parametrize("named_key", [None, "AKIAEXAMPLEOTHERUSER1"], ids=["no-key", "another-users-key"])
def test_a_finding_that_names_no_key_of_the_user_changes_no_key(workload, named_key):
    step, before = _step(workload, access_key_id=named_key), observed_user(workload)
    deactivated = steps.deactivate_access_key(step)
    assert deactivated.changed is False and "names no access key" in deactivated.detail["reason"]
    assert steps.restore_access_key_status(step).changed is False
    assert observed_user(workload) == before


def test_a_key_deleted_since_the_context_was_taken_is_not_found(workload):
    step = _step(workload)
    boto3.client("iam").delete_access_key(UserName=workload.iam_user, AccessKeyId=workload.access_key_id)
    with pytest.raises(ApplicationError) as gone:
        steps.deactivate_access_key(step)
    assert gone.value.type == NOT_FOUND and gone.value.non_retryable
    assert observed_user(workload)["keys"] == {workload.other_access_key_id: "Active"}


def test_older_sessions_are_denied_from_the_cutoff(workload):
    result = steps.revoke_user_sessions(_step(workload))
    assert result.detail == {"policy": POLICY, "issued_before": "2025-03-14T09:26:53Z"}
    [statement] = revocation_document(workload)["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2025-03-14T09:26:53Z"}}


def test_a_cutoff_in_another_time_zone_is_written_in_utc(workload):
    paris = timezone(timedelta(hours=1))
    step = _step(workload).model_copy(update={"issued_before": datetime(2025, 3, 14, 10, 26, 53, tzinfo=paris)})
    steps.revoke_user_sessions(step)
    [statement] = revocation_document(workload)["Statement"]
    assert statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == "2025-03-14T09:26:53Z"


def test_revocation_needs_a_cutoff(workload):
    step = _step(workload).model_copy(update={"issued_before": None})
    with pytest.raises(ApplicationError) as refused:
        steps.revoke_user_sessions(step)
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert observed_user(workload)["inline_policies"] == {}


def test_the_users_own_inline_policies_survive_the_revocation_and_its_undo(workload):
    _give_the_user_more_to_record(workload)
    step = _step(workload)
    steps.revoke_user_sessions(step)
    steps.remove_user_session_revocation(step)
    assert observed_user(workload)["inline_policies"] == {"deploy-artifacts": DEPLOY_POLICY}


# --- eradication, after approval ---


def test_removing_credentials_deletes_the_exposed_key_and_the_password_and_twice_is_once(workload):
    step = _step(workload)
    for containment in IAM_USER_CONTAINMENT_STEPS:
        act(containment, step)
    removed = steps.remove_user_credentials(step)
    assert removed.changed is True
    assert removed.detail["done"] == [f"deleted access key {workload.access_key_id}", "deleted the console password"]
    after = observed_user(workload)
    assert after["keys"] == {workload.other_access_key_id: "Active"}, "the other key is not the incident's"
    assert after["login_profile"] is False

    again = steps.remove_user_credentials(step)
    assert (again.changed, again.detail["done"]) == (False, [])
    assert observed_user(workload) == after


def test_without_a_named_key_only_the_password_is_removed(workload):
    step = _step(workload, access_key_id=None)
    removed = steps.remove_user_credentials(step)
    assert removed.detail["done"] == ["deleted the console password"]
    after = observed_user(workload)
    assert after["keys"] == {workload.access_key_id: "Active", workload.other_access_key_id: "Active"}
    assert after["login_profile"] is False


# --- evidence ---


def test_the_evidence_holds_what_an_investigator_asks_about_the_user(workload):
    more = _give_the_user_more_to_record(workload)
    step = _step(workload)
    for containment in IAM_USER_CONTAINMENT_STEPS:
        act(containment, step)
    evidence = steps.collect_iam_user_evidence(step)
    assert evidence.kind == "iam-user"
    assert evidence.key == f"incidents/{INCIDENT_ID}/iam/users/{identity_hash(workload.iam_user)}.json"
    assert workload.iam_user not in evidence.key, "S3 keys are not encrypted: no names in them"
    document = json.loads(read_evidence(evidence))

    user = document["user"]
    assert user["user_arn"] == f"arn:aws:iam::{workload.account_id}:user/{workload.iam_user}"
    assert {k["access_key_id"]: k["status"] for k in user["access_keys"]} == {
        workload.access_key_id: "Active",
        workload.other_access_key_id: "Active",
    }, "the keys as they were before containment"
    assert all("last_used_service" in k for k in user["access_keys"])
    assert user["has_login_profile"] is True and user["mfa_devices"] == [more.mfa_serial]
    assert user["groups"] == ["deployers"] and user["attached_policies"] == [more.managed_policy_arn]
    assert user["tags"] == {"team": "platform"}

    inline = document["inline_policy_documents"]
    policies = {name: json.loads(d) if isinstance(d, str) else d for name, d in inline.items()}
    assert policies["deploy-artifacts"] == DEPLOY_POLICY
    assert policies[POLICY]["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == "2025-03-14T09:26:53Z"

    row = document["credential_report_row"]
    assert row["user"] == workload.iam_user and row["arn"] == user["user_arn"]
    assert row["password_enabled"] == "true"
    assert {row["access_key_1_active"], row["access_key_2_active"]} == {"true", "false"}, "one key now Inactive"

    again = steps.collect_iam_user_evidence(step)
    assert (again.key, again.version_id, again.sha256) == (evidence.key, evidence.version_id, evidence.sha256)
