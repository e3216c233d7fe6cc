"""Signing a decision's proof with botocore, finding the STS endpoint, reading STS's answers."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError

from irflow.decision_proof import caller_identity, endpoint_host, sign_decision, sts_endpoint_url, sts_error
from irflow.models.proof import GET_CALLER_IDENTITY_BODY, PROOF_HEADER, Binding
from irflow.models.settings import IrflowSettings

AT = datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC)


def test_the_signature_is_botocores_sigv4_over_the_get_caller_identity_request(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: AT.replace(tzinfo=None))
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE0000001", aws_secret_access_key="s3cret")
    proof = sign_decision(
        session, "https://sts.us-east-1.amazonaws.com", incident_id="inc-1", verb="reject", comment="fp"
    )
    # Recompute it as STS would, from the headers the proof names and the one body a proof may have.
    headers = {k: v for k, v in proof.headers.items() if k != "Authorization"}
    url = "https://sts.us-east-1.amazonaws.com"
    request = AWSRequest(method="POST", url=url, data=GET_CALLER_IDENTITY_BODY, headers=headers)
    request.context["timestamp"] = proof.header("X-Amz-Date")
    auth = SigV4Auth(Credentials("AKIAEXAMPLE0000001", "s3cret"), "sts", "us-east-1")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert proof.header("Authorization").endswith(f"Signature={expected}")
    assert proof.header("X-Amz-Date") == "20261207T130000Z"
    binding = Binding.parse(proof.header(PROOF_HEADER))
    assert (binding.incident, binding.verb, binding.choice) == ("inc-1", "reject", "none")


def test_session_credentials_sign_their_token_too():
    session = boto3.session.Session(
        aws_access_key_id="ASIAEXAMPLE0000001", aws_secret_access_key="s", aws_session_token="tok"
    )
    proof = sign_decision(session, "https://sts.amazonaws.com", incident_id="i", verb="note", comment="x")
    assert proof.header("X-Amz-Security-Token") == "tok"
    assert "x-amz-security-token" in proof.header("Authorization")


def test_no_credentials_no_proof(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(NoCredentialsError):
        sign_decision(boto3.session.Session(), "https://sts.amazonaws.com", incident_id="i", verb="note", comment="x")


def test_the_endpoint_is_the_setting_else_boto3s_for_the_region(monkeypatch):
    configured = IrflowSettings(proof_sts_endpoint_url="http://127.0.0.1:5000")
    assert sts_endpoint_url(configured) == "http://127.0.0.1:5000"
    assert sts_endpoint_url(IrflowSettings()) == "https://sts.us-east-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://localhost:4566")
    assert sts_endpoint_url(IrflowSettings()) == "http://localhost:4566"


def test_the_host_is_what_sigv4_signs():
    assert endpoint_host("https://STS.us-east-1.amazonaws.com") == "sts.us-east-1.amazonaws.com"
    assert endpoint_host("https://sts.amazonaws.com:443/") == "sts.amazonaws.com"
    assert endpoint_host("http://user@127.0.0.1:4566") == "127.0.0.1:4566"
    assert endpoint_host("http://[::1]:4566") == "[::1]:4566"


def test_stss_answers_are_read():
    answer = b"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/alice</Arn><UserId>AIDAEXAMPLE</UserId>
      <Account>111122223333</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"""
    assert caller_identity(answer) == ("arn:aws:iam::111122223333:user/alice", "111122223333", "AIDAEXAMPLE")
    error = b"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>
      <Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message></Error>
      </ErrorResponse>"""
    assert sts_error(error) == ("ExpiredToken", "The security token included in the request is expired")
    assert sts_error(b"not xml") == ("", "")
    with pytest.raises(ValueError, match="no ARN"):
        caller_identity(error)
    with pytest.raises(ValueError, match="DTD"):
        caller_identity(b'<!DOCTYPE x [<!ENTITY e "arn:aws:iam::1:user/x">]><Arn>&e;</Arn>')
