"""An incident about a member account: irflow assumes the responder role there, contains the resource in
that account, and keeps the evidence in the security account's bucket (moto keeps each account apart)."""

from __future__ import annotations

import json

import boto3
import pytest

from activities.aws import client as aws_client
from activities.aws import member_role_arn, own_account_id
from irflow.devstack.demo import sample_access_key_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from irflow.models.settings import get_settings
from tests.support import member_session, read_evidence, running_worker, wait_for
from workflows.incident import IncidentWorkflow

MEMBER = "210987654321"


@pytest.fixture
def member(workload):
    session = member_session(MEMBER)
    assert session.client("sts").get_caller_identity()["Account"] == MEMBER
    iam = session.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{workload.account_id}:role/irflow-worker"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName="irflow-responder", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_user(UserName="member-deployer")
    key = iam.create_access_key(UserName="member-deployer")["AccessKey"]["AccessKeyId"]
    return session, key


def test_member_accounts_are_reached_through_the_responder_role(workload, member):
    assert own_account_id() == workload.account_id
    assert member_role_arn(MEMBER) == f"arn:aws:iam::{MEMBER}:role/irflow-responder"
    iam = aws_client("iam", workload.region, MEMBER)
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["member-deployer"]
    # The security account's own calls keep the worker's credentials (and its own users).
    assert aws_client("iam", workload.region, workload.account_id) is aws_client("iam", workload.region)
    assert "member-deployer" not in [u["UserName"] for u in boto3.client("iam").list_users()["Users"]]


async def test_a_member_account_incident_acts_there_and_keeps_evidence_in_the_security_account(
    dev_env, workload, member
):
    session, key = member
    client = dev_env.client
    async with running_worker(client) as settings:
        event = sample_access_key_finding("member-deployer", key, account_id=MEMBER, region=workload.region)
        submission = await submit(client, parse_guardduty(event), settings)
        assert submission.workflow_id.startswith(f"iam-user-{MEMBER}-")
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)

        # Contained in the member account...
        member_iam = session.client("iam")
        [status] = [
            k["Status"]
            for k in member_iam.list_access_keys(UserName="member-deployer")["AccessKeyMetadata"]
            if k["AccessKeyId"] == key
        ]
        assert status == "Inactive"
        assert member_iam.list_user_policies(UserName="member-deployer")["PolicyNames"] == [
            f"irflow-revoke-sessions-{submission.incident_id}"
        ]
        # ...with the evidence locked in the security account's bucket, and none in the member's.
        s3 = boto3.client("s3")
        assert state.evidence
        for evidence in state.evidence:
            assert evidence.bucket == get_settings().evidence_bucket
            read_evidence(evidence)
        user_evidence = next(e for e in state.evidence if e.kind == "iam-user")
        stored = json.loads(s3.get_object(Bucket=user_evidence.bucket, Key=user_evidence.key)["Body"].read())
        assert stored["user"]["user_arn"] == f"arn:aws:iam::{MEMBER}:user/member-deployer"
        assert session.client("s3").list_buckets()["Buckets"] == []

        await handle.signal("reject", {"by": "bob", "reason": "rotation drill"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    [restored] = member_iam.list_access_keys(UserName="member-deployer")["AccessKeyMetadata"]
    assert restored["Status"] == "Active"
    assert member_iam.list_user_policies(UserName="member-deployer")["PolicyNames"] == []
