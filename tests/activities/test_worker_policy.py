"""The worker's policy comes from the worker's own settings, with irflow's own principals found at start."""

from __future__ import annotations

import boto3

from activities.aws import reset_clients
from activities.worker_policy import WorkerPolicy
from irflow.models.incident import PolicyRequest
from irflow.models.settings import IrflowSettings


def test_the_policy_is_the_workers_settings_with_its_own_identity(aws, monkeypatch):
    iam = boto3.client("iam")
    iam.create_role(RoleName="irflow-worker", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}')
    session = boto3.client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/irflow-worker", RoleSessionName="w1"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", session["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", session["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", session["SessionToken"])
    reset_clients()
    settings = IrflowSettings(
        approvers={"arn:aws:iam::123456789012:user/alice": ["approver"]},
        protected=["arn:aws:iam::*:user/ciso"],
        max_auto_containments_per_hour=3,
        own_principals=["arn:aws:iam::123456789012:role/irflow-listener"],
    )
    policy = WorkerPolicy(settings).load_response_policy(PolicyRequest(incident_id="i-1", account_id="123456789012"))
    assert list(policy.approvers) == ["arn:aws:iam::123456789012:user/alice"]
    assert policy.protected == ["arn:aws:iam::*:user/ciso"] and policy.max_auto_containments_per_hour == 3
    assert "arn:aws:sts::123456789012:assumed-role/irflow-worker/*" in policy.own_principals
    assert "arn:aws:iam::123456789012:role/irflow-worker" in policy.own_principals
    assert "arn:aws:iam::123456789012:role/irflow-listener" in policy.own_principals
    assert "arn:aws:sts::*:assumed-role/irflow-responder/*" in policy.own_principals
