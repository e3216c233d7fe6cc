"""irflow's own principals: the patterns made from the settings and the identities found at start, and matching a
caller's ARN (or the role behind its session) against them."""

from __future__ import annotations

from irflow.models.settings import IrflowSettings
from irflow.own_principals import (
    arn_patterns,
    caller_arn,
    caller_arns,
    is_own_principal,
    made_by_own_principal,
    own_principal_patterns,
)

WORKER_SESSION = "arn:aws:sts::111122223333:assumed-role/irflow-worker/i-0123456789abcdef0"


def _record(arn: str, issuer: str | None = None) -> dict:
    identity: dict = {"type": "AssumedRole" if issuer else "IAMUser", "arn": arn}
    if issuer:
        identity["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": issuer}}
    return {"eventName": "PutBucketPolicy", "userIdentity": identity}


def test_the_member_role_is_irflow_in_every_account_as_a_role_and_as_any_session():
    patterns = own_principal_patterns(IrflowSettings(member_role_name="irflow-responder"))
    assert is_own_principal("arn:aws:iam::210987654321:role/irflow-responder", patterns)
    assert is_own_principal("arn:aws:iam::210987654321:role/ops/irflow-responder", patterns)
    assert is_own_principal("arn:aws:sts::210987654321:assumed-role/irflow-responder/irflow-responder", patterns)
    assert not is_own_principal("arn:aws:iam::210987654321:role/irflow-responder-not", patterns)
    assert not is_own_principal("arn:aws:sts::210987654321:assumed-role/Admin/irflow-responder", patterns)
    assert not is_own_principal("arn:aws-cn:iam::210987654321:role/irflow-responder", patterns), "other partition"


def test_configured_globs_are_irflow_and_nothing_else_is():
    settings = IrflowSettings(own_principals="arn:aws:iam::111122223333:role/irflow-listener,arn:aws:iam::*:user/ci")
    patterns = own_principal_patterns(settings)
    assert is_own_principal("arn:aws:iam::111122223333:role/irflow-listener", patterns)
    assert is_own_principal("arn:aws:iam::444455556666:user/ci", patterns)
    assert not is_own_principal("arn:aws:iam::111122223333:user/mallory", patterns)
    assert not is_own_principal("", patterns) and not is_own_principal(None, patterns)


def test_an_identity_found_at_start_brings_its_role_and_its_other_sessions():
    patterns = own_principal_patterns(IrflowSettings(), WORKER_SESSION, "arn:aws:iam::111122223333:user/moto")
    assert is_own_principal(WORKER_SESSION, patterns)
    assert is_own_principal("arn:aws:sts::111122223333:assumed-role/irflow-worker/another-session", patterns)
    assert is_own_principal("arn:aws:iam::111122223333:role/irflow-worker", patterns)
    assert is_own_principal("arn:aws:iam::111122223333:role/service/irflow-worker", patterns)
    assert is_own_principal("arn:aws:iam::111122223333:user/moto", patterns)
    assert not is_own_principal("arn:aws:iam::444455556666:role/irflow-worker", patterns), "the same name elsewhere"
    assert not is_own_principal("arn:aws:iam::111122223333:user/motor", patterns)
    assert len(patterns) == len(set(patterns))
    assert arn_patterns("") == [] and arn_patterns("arn:aws:iam::1:user/u") == ["arn:aws:iam::1:user/u"]


def test_a_record_is_irflows_by_its_caller_or_by_the_role_behind_the_session():
    patterns = own_principal_patterns(IrflowSettings(own_principals=["arn:aws:iam::111122223333:role/irflow-worker"]))
    by_session = _record(WORKER_SESSION, issuer="arn:aws:iam::111122223333:role/irflow-worker")
    assert caller_arns(by_session) == [WORKER_SESSION, "arn:aws:iam::111122223333:role/irflow-worker"]
    assert made_by_own_principal(by_session, patterns)
    other = _record(
        "arn:aws:sts::111122223333:assumed-role/Admin/mallory", issuer="arn:aws:iam::111122223333:role/Admin"
    )
    assert not made_by_own_principal(other, patterns)
    assert not made_by_own_principal({"eventName": "X"}, patterns) and caller_arns({"userIdentity": "x"}) == []
    assert not made_by_own_principal(by_session, []), "no patterns: nobody is irflow"


def test_who_made_a_call_is_the_callers_arn_else_the_service_that_made_it():
    session = "arn:aws:sts::111122223333:assumed-role/app/i-1"
    assert caller_arn({"userIdentity": {"arn": session, "invokedBy": "autoscaling.amazonaws.com"}}) == session
    assert caller_arn({"userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}}) == (
        "lambda.amazonaws.com"
    )
    assert caller_arn({"userIdentity": {}}) is None and caller_arn({}) is None
