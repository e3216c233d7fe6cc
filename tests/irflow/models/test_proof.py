"""A decision's proof, checked without STS: what it must sign, what it is bound to, how long it is good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import botocore.auth
import pytest

from irflow.decision_proof import sign_decision
from irflow.models.proof import (
    PROOF_HEADER,
    Binding,
    DecisionProof,
    ProofRefused,
    VerifiedCaller,
    check_proof,
    comment_digest,
    parse_proof,
)

ENDPOINT = "https://sts.us-east-1.amazonaws.com"
HOST = "sts.us-east-1.amazonaws.com"
INCIDENT = "ec2-123456789012-us-east-1-i-0123456789abcdef0-20261207T125819Z"
AT = datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC)
SESSION = boto3.session.Session(
    aws_access_key_id="AKIAEXAMPLEALICE0001", aws_secret_access_key="alice-secret", region_name="us-east-1"
)


@pytest.fixture(autouse=True)
def _signed_at_a_known_moment(monkeypatch):
    """Every proof here is signed at AT: botocore's SigV4 reads its clock from `get_current_datetime` (naive UTC)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: AT.replace(tzinfo=None))


def _proof(**changes) -> DecisionProof:
    arguments = {"incident_id": INCIDENT, "verb": "approve", "comment": "confirmed", "choice": "stop"}
    return sign_decision(SESSION, changes.pop("endpoint", ENDPOINT), **{**arguments, **changes})


def _check(proof: DecisionProof, **changes):
    arguments = {
        "incident_id": INCIDENT,
        "verb": "approve",
        "comment": "confirmed",
        "choice": "stop",
        "now": AT + timedelta(seconds=5),
        "max_age": timedelta(seconds=300),
        "host": HOST,
    }
    return check_proof(proof, **{**arguments, **changes})


def _with(proof: DecisionProof, name: str, value: str | None) -> DecisionProof:
    headers = {k: v for k, v in proof.headers.items() if k.lower() != name.lower()}
    if value is not None:
        headers[name] = value
    return DecisionProof(headers=headers)


def test_a_proof_signs_the_host_the_date_and_the_binding_for_this_decision():
    proof = _proof()
    signed = _check(proof)
    assert {"host", "x-amz-date", "x-irflow-decision"} <= signed.signed_headers
    assert signed.host == HOST and signed.access_key_id == "AKIAEXAMPLEALICE0001" and signed.signed_at == AT
    assert signed.binding.incident == INCIDENT and signed.binding.comment_sha256 == comment_digest("confirmed")
    assert "alice-secret" not in str(proof.headers), "the secret never leaves the signer"
    assert proof.proof_id != _proof().proof_id, "a fresh nonce each time: two proofs, two ids"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"incident_id": "ec2-123456789012-us-east-1-i-0fedcba987654321f-20261207T125819Z"}, "not this one"),
        ({"verb": "reject"}, "not reject"),
        ({"comment": "something else"}, "other words"),
        ({"choice": "terminate"}, "not terminate"),
        ({"now": AT + timedelta(seconds=301)}, "expired"),
        ({"now": AT - timedelta(seconds=61)}, "future"),
        ({"host": "sts.eu-west-1.amazonaws.com"}, "not the STS endpoint"),
    ],
)
def test_a_proof_for_another_decision_another_time_or_another_host_is_refused(changes, reason):
    with pytest.raises(ProofRefused, match=reason):
        _check(_proof(), **changes)


def test_the_host_check_compares_what_was_signed():
    local = _proof(endpoint="http://127.0.0.1:4566")
    assert _check(local, host="127.0.0.1:4566").host == "127.0.0.1:4566"
    with pytest.raises(ProofRefused, match="not the STS endpoint"):
        _check(local, host="127.0.0.1:4567")


def test_the_signed_headers_must_include_host_date_and_binding():
    proof = _proof()
    authorization = proof.header("Authorization")
    for name in ("host", "x-amz-date", "x-irflow-decision"):
        signed = authorization.split("SignedHeaders=")[1].split(",")[0]
        fewer = ";".join(h for h in signed.split(";") if h != name)
        with pytest.raises(ProofRefused, match=f"lack {name}"):
            parse_proof(_with(proof, "Authorization", authorization.replace(signed, fewer)))
    more = authorization.replace("SignedHeaders=", "SignedHeaders=x-forwarded-host;")
    with pytest.raises(ProofRefused, match="no use for"):
        parse_proof(_with(proof, "Authorization", more))


def test_malformed_proofs_are_refused_with_a_reason():
    proof = _proof()
    cases = {
        "no AWS4-HMAC-SHA256": _with(proof, "Authorization", None),
        "signed for s3": _with(proof, "Authorization", proof.header("Authorization").replace("/sts/", "/s3/")),
        "missing: host": _with(proof, "Host", None),
        "not a SigV4 date": _with(proof, "X-Amz-Date", "yesterday"),
        "different days": _with(proof, "X-Amz-Date", "20261208T130000Z"),
        "not a form": _with(proof, "Content-Type", "application/json"),
        "not v1": _with(proof, PROOF_HEADER, proof.header(PROOF_HEADER).replace("v1", "v2", 1)),
        "must name": _with(proof, PROOF_HEADER, "v1 incident=x verb=approve"),
        "malformed": _with(proof, PROOF_HEADER, proof.header(PROOF_HEADER) + " verb=reject"),
    }
    for reason, bad in cases.items():
        with pytest.raises(ProofRefused, match=reason):
            parse_proof(bad)


def test_the_binding_round_trips_and_wants_a_real_nonce():
    binding = Binding(incident=INCIDENT, verb="note", comment_sha256=comment_digest("x"), nonce="ab" * 8)
    assert Binding.parse(binding.render()) == binding
    with pytest.raises(ProofRefused, match="nonce"):
        Binding.parse(binding.model_copy(update={"nonce": "1"}).render())


def test_a_verified_caller_is_known_by_every_name_a_finding_might_use():
    user = VerifiedCaller(
        arn="arn:aws:iam::111122223333:user/ops/alice", user_id="AIDAEXAMPLE", access_key_id="AKIAEXAMPLE"
    )
    assert user.names() == ["arn:aws:iam::111122223333:user/ops/alice", "alice", "AIDAEXAMPLE", "AKIAEXAMPLE"]
    session = VerifiedCaller(arn="arn:aws:sts::111122223333:assumed-role/IR-Approver/bob", user_id="AROAEX:bob")
    assert session.names() == [
        "arn:aws:sts::111122223333:assumed-role/IR-Approver/bob",
        "IR-Approver",
        "bob",
        "AROAEX:bob",
        "AROAEX",
    ]
