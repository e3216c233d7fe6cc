"""IAM role activities against in-process moto: the context is the role as it was and who carries it, roles AWS
owns are named as such, each containment step twice changes the role once and its undo restores it exactly,
older sessions are denied from the cut-off, and the evidence matches its hash and holds the policy documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto.ec2.models import ec2_backends
from temporalio.exceptions import ApplicationError

from activities import iam_role as steps
from activities.iam import revocation_policy_name
from irflow.devstack.demo import DemoWorkload
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.iam import IamRoleStepInput, IamRoleTarget
from irflow.visibility import identity_hash
from tests.support import act, assert_step_contract, read_evidence, undo
from workflows.iam_role_playbook import IAM_ROLE_CONTAINMENT_STEPS

INCIDENT_ID = "inc-iam-role-0001"
CUTOFF = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
POLICY = revocation_policy_name(INCIDENT_ID)
OURS = {"irflow:incident-id": INCIDENT_ID, "irflow:status": "contained"}
# The demo role's trust policy (irflow/devstack/demo.py): EC2 may assume it.
DEMO_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
UPLOADS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::demo-uploads/*"}],
}
READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
}


def observed_role(role: str) -> dict:
    """What a responder would check on the role, read straight from (moto's) IAM."""
    iam = boto3.client("iam")
    record = iam.get_role(RoleName=role)["Role"]
    return {
        "path": record["Path"],
        "trust_policy": record["AssumeRolePolicyDocument"],
        "max_session_duration": record["MaxSessionDuration"],
        "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]},
        "inline_policies": {
            name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        },
        "attached_policies": sorted(
            p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        ),
        "instance_profiles": sorted(
            p["Arn"] for p in iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
        ),
    }


def revocation_document(role: str) -> dict:
    document = boto3.client("iam").get_role_policy(RoleName=role, PolicyName=POLICY)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def _target(workload: DemoWorkload, **overrides) -> IamRoleTarget:
    where = {
        "incident_id": INCIDENT_ID,
        "account_id": workload.account_id,
        "region": workload.region,
        "role_name": workload.role_name,
    }
    return IamRoleTarget(**{**where, **overrides})


def _step(workload: DemoWorkload, **overrides) -> IamRoleStepInput:
    """The step input the playbook makes: the target, its describe step's context, the cut-off."""
    target = _target(workload, **overrides)
    return IamRoleStepInput(target=target, prior=steps.describe_iam_role_context(target), issued_before=CUTOFF)


def _give_the_role_policies_and_a_tag(workload: DemoWorkload) -> str:
    """An inline and a managed policy and a tag of its own; returns the managed policy's ARN."""
    iam = boto3.client("iam")
    iam.put_role_policy(RoleName=workload.role_name, PolicyName="uploads", PolicyDocument=json.dumps(UPLOADS_POLICY))
    managed = iam.create_policy(PolicyName="web-read", PolicyDocument=json.dumps(READ_POLICY))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=workload.role_name, PolicyArn=managed)
    iam.tag_role(RoleName=workload.role_name, Tags=[{"Key": "app", "Value": "shop"}])
    return managed


def _profile_arn(workload: DemoWorkload) -> str:
    return boto3.client("iam").get_instance_profile(InstanceProfileName=workload.instance_profile)["InstanceProfile"][
        "Arn"
    ]


# --- what the role was, and who carries it ---


def test_the_context_records_what_containment_will_change(workload):
    managed = _give_the_role_policies_and_a_tag(workload)
    prior = _step(workload).prior
    role = boto3.client("iam").get_role(RoleName=workload.role_name)["Role"]
    assert (prior.role_name, prior.role_arn, prior.role_id) == (workload.role_name, role["Arn"], role["RoleId"])
    assert prior.path == "/" and prior.max_session_duration == 3600
    assert prior.trust_policy == DEMO_TRUST
    assert prior.tags == {"app": "shop"}
    assert prior.inline_policies == ["uploads"]
    assert prior.attached_policies == [managed]
    assert prior.instance_profiles == [_profile_arn(workload)]
    assert prior.instances_using_role == sorted([workload.instance_id, workload.other_instance_id])
    assert prior.unmodifiable_reason is None


@pytest.mark.parametrize("lingering_state", [None, "disassociating", "disassociated"])
def test_an_instance_whose_profile_was_removed_no_longer_counts_as_using_the_role(workload, lingering_state):
    """AWS lists a removed association for a while as "disassociating", then "disassociated"; moto drops it at
    once. Either way the instance no longer carries the role."""
    ec2 = boto3.client("ec2", region_name=workload.region)
    [association] = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [workload.other_instance_id]}]
    )["IamInstanceProfileAssociations"]
    if lingering_state is None:
        ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    else:
        backend = ec2_backends[workload.account_id][workload.region]
        backend.iam_instance_profile_associations[workload.other_instance_id].state = lingering_state
        listed = ec2.describe_iam_instance_profile_associations(AssociationIds=[association["AssociationId"]])
        assert listed["IamInstanceProfileAssociations"][0]["State"] == lingering_state
    assert _step(workload).prior.instances_using_role == [workload.instance_id]


def test_a_role_in_no_instance_profile_is_carried_by_no_instance(workload):
    iam = boto3.client("iam")
    iam.create_role(RoleName="pipeline", AssumeRolePolicyDocument=json.dumps(DEMO_TRUST))
    prior = _step(workload, role_name="pipeline").prior
    assert (prior.instance_profiles, prior.instances_using_role) == ([], [])


def test_a_service_linked_role_is_named_unmodifiable(workload):
    linked = boto3.client("iam").create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")["Role"]
    prior = _step(workload, role_name=linked["RoleName"]).prior
    assert prior.path.startswith("/aws-service-role/")
    assert prior.unmodifiable_reason and "service-linked" in prior.unmodifiable_reason


def test_an_identity_center_role_is_named_unmodifiable(workload):
    boto3.client("iam").create_role(
        RoleName="AWSReservedSSO_Admin_0123456789abcdef",
        Path="/aws-reserved/sso.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps(DEMO_TRUST),
    )
    prior = _step(workload, role_name="AWSReservedSSO_Admin_0123456789abcdef").prior
    assert prior.unmodifiable_reason and "Identity Center" in prior.unmodifiable_reason


def test_a_finding_without_a_role_name_finds_the_role_from_its_principal_id(workload):
    role_id = boto3.client("iam").get_role(RoleName=workload.role_name)["Role"]["RoleId"]
    target = _target(workload, role_name="", principal_id=f"{role_id}:{workload.instance_id}")
    assert target.session_name == workload.instance_id
    assert steps.describe_iam_role_context(target).role_name == workload.role_name


@pytest.mark.parametrize(
    ("role_name", "principal_id"),
    [
        ("no-such-role", None),
        ("", None),
        ("", "AIDAEXAMPLEUSERID:session"),
        ("", "AROAEXAMPLENOSUCHROLE:session"),
    ],
    ids=["missing-role", "no-name-no-principal", "principal-not-a-role", "unknown-role-id"],
)
def test_a_role_that_cannot_be_found_is_not_found(workload, role_name, principal_id):
    """The module refuses a finding that names no role the same way as a missing one: NotFound, not retried."""
    with pytest.raises(ApplicationError) as missing:
        steps.describe_iam_role_context(_target(workload, role_name=role_name, principal_id=principal_id))
    assert missing.value.type == NOT_FOUND and missing.value.non_retryable


@pytest.mark.parametrize(
    "overrides",
    [{"role_name": "web;id"}, {"role_name": "web/../admin"}, {"role_name": "r" * 65}, {"account_id": "x" * 12}],
    ids=["shell", "path", "too-long", "account"],
)
def test_a_name_that_iam_would_never_accept_is_refused_before_any_call(workload, overrides):
    with pytest.raises(ApplicationError) as refused:
        steps.describe_iam_role_context(_target(workload, **overrides))
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable


def test_a_revocation_is_never_written_for_a_crafted_role_name_or_incident_id(workload):
    before = observed_role(workload.role_name)
    step = _step(workload)
    crafted = step.model_copy(update={"prior": step.prior.model_copy(update={"role_name": "web$(id)"})})
    for bad in (crafted, step.model_copy(update={"target": step.target.model_copy(update={"incident_id": "../x"})})):
        with pytest.raises(ApplicationError) as refused:
            steps.revoke_iam_role_sessions(bad)
        assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert observed_role(workload.role_name) == before


# --- every containment step: twice is once, its undo restores exactly ---


@pytest.mark.parametrize("containment", IAM_ROLE_CONTAINMENT_STEPS, ids=lambda c: c.name)
def test_each_step_twice_changes_the_role_once_and_its_undo_restores_it_exactly(workload, containment):
    _give_the_role_policies_and_a_tag(workload)
    assert_step_contract(containment, _step(workload), lambda: observed_role(workload.role_name))


def test_all_steps_then_all_undos_in_reverse_restore_the_role_exactly(workload):
    _give_the_role_policies_and_a_tag(workload)
    step, before = _step(workload), observed_role(workload.role_name)
    assert all(act(c, step).changed for c in IAM_ROLE_CONTAINMENT_STEPS)
    contained = observed_role(workload.role_name)
    assert contained["tags"] == {"app": "shop", **OURS}
    assert sorted(contained["inline_policies"]) == sorted(["uploads", POLICY])
    unchanged = ("path", "trust_policy", "max_session_duration", "attached_policies", "instance_profiles")
    assert {k: contained[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert [act(c, step).changed for c in IAM_ROLE_CONTAINMENT_STEPS] == [False] * len(IAM_ROLE_CONTAINMENT_STEPS)

    assert all(undo(c, step).changed for c in reversed(IAM_ROLE_CONTAINMENT_STEPS))
    assert observed_role(workload.role_name) == before
    assert not any(undo(c, step).changed for c in reversed(IAM_ROLE_CONTAINMENT_STEPS))
    assert observed_role(workload.role_name) == before


# --- the revocation, as a responder sees it ---


def test_older_sessions_of_the_role_are_denied_from_the_cutoff(workload):
    step = _step(workload)
    result = steps.revoke_iam_role_sessions(step)
    assert result.detail == {
        "role": workload.role_name,
        "policy": POLICY,
        "issued_before": "2025-03-14T09:26:53Z",
        "instances_refreshing": sorted([workload.instance_id, workload.other_instance_id]),
    }
    [statement] = revocation_document(workload.role_name)["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2025-03-14T09:26:53Z"}}


def test_revocation_needs_a_cutoff(workload):
    step = _step(workload).model_copy(update={"issued_before": None})
    with pytest.raises(ApplicationError) as refused:
        steps.revoke_iam_role_sessions(step)
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert observed_role(workload.role_name)["inline_policies"] == {}


def test_the_roles_own_policies_survive_the_revocation_and_its_undo(workload):
    managed = _give_the_role_policies_and_a_tag(workload)
    step = _step(workload)
    steps.revoke_iam_role_sessions(step)
    steps.remove_iam_role_session_revocation(step)
    after = observed_role(workload.role_name)
    assert after["inline_policies"] == {"uploads": UPLOADS_POLICY}
    assert after["attached_policies"] == [managed]


def test_removing_the_revocation_from_a_role_deleted_meanwhile_changes_nothing_and_does_not_fail(workload):
    boto3.client("iam").create_role(RoleName="pipeline", AssumeRolePolicyDocument=json.dumps(DEMO_TRUST))
    step = _step(workload, role_name="pipeline")
    boto3.client("iam").delete_role(RoleName="pipeline")
    assert steps.remove_iam_role_session_revocation(step).changed is False


# --- evidence ---


def test_the_evidence_holds_the_role_its_policy_documents_and_the_session(workload):
    managed = _give_the_role_policies_and_a_tag(workload)
    role_id = boto3.client("iam").get_role(RoleName=workload.role_name)["Role"]["RoleId"]
    step = _step(
        workload,
        principal_id=f"{role_id}:{workload.instance_id}",
        access_key_id="ASIAEXAMPLESTOLEN001",
        source_instance_ids=[workload.instance_id],
    )
    for containment in IAM_ROLE_CONTAINMENT_STEPS:
        act(containment, step)
    evidence = steps.collect_iam_role_evidence(step)
    assert evidence.kind == "iam-role"
    assert evidence.key == f"incidents/{INCIDENT_ID}/iam/roles/{identity_hash(workload.role_name)}.json"
    assert workload.role_name not in evidence.key, "S3 keys are not encrypted: no names in them"
    document = json.loads(read_evidence(evidence))

    role = document["role"]
    assert role["role_arn"] == f"arn:aws:iam::{workload.account_id}:role/{workload.role_name}"
    assert role["trust_policy"] == DEMO_TRUST
    assert role["tags"] == {"app": "shop"}, "the tags before containment"
    assert role["instance_profiles"] == [_profile_arn(workload)]
    assert role["instances_using_role"] == sorted([workload.instance_id, workload.other_instance_id])
    assert document["session"] == {
        "principal_id": f"{role_id}:{workload.instance_id}",
        "session_name": workload.instance_id,
        "access_key_id": "ASIAEXAMPLESTOLEN001",
        "source_instances": [workload.instance_id],
    }
    documents = {k: json.loads(v) if isinstance(v, str) else v for k, v in document["policy_documents"].items()}
    assert documents == {"inline:uploads": UPLOADS_POLICY, managed: READ_POLICY}, "what the credentials could do"

    again = steps.collect_iam_role_evidence(step)
    assert (again.key, again.version_id, again.sha256) == (evidence.key, evidence.version_id, evidence.sha256)


def test_a_policy_deleted_before_the_evidence_is_recorded_as_such(workload):
    managed = _give_the_role_policies_and_a_tag(workload)
    step = _step(workload)
    iam = boto3.client("iam")
    iam.detach_role_policy(RoleName=workload.role_name, PolicyArn=managed)
    iam.delete_policy(PolicyArn=managed)
    document = json.loads(read_evidence(steps.collect_iam_role_evidence(step)))
    assert document["policy_documents"][managed] == {"error": "NoSuchEntity"}
    assert document["role"]["attached_policies"] == [managed], "the role as it was when the incident began"
