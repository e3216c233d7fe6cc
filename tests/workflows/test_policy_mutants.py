"""The decision rules' edges that mutation testing found unguarded (bench/MUTATION.md): proofs that are missing,
reused, bound elsewhere or stale; who a finding names; which approver entries an ARN meets. Pure: no AWS, no
Temporal (a proof is signed offline with made-up keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from irflow.decision_proof import sign_decision
from irflow.devstack.demo import sample_access_key_finding, sample_role_finding
from irflow.models.ec2 import InstanceProfileState, NetworkInterfaceState
from irflow.models.finding import parse_guardduty
from irflow.models.iam import AccessKeyState, IamRoleContext, IamUserContext
from irflow.models.incident import DecisionKind, PendingDecision, ResponsePolicy
from irflow.models.proof import VerifiedCaller
from tests.workflows.test_policy import NOW, _context, _finding
from workflows.policy import (
    affected_principal,
    approver_for,
    decision_refusal,
    plan_ec2_containment,
    plan_iam_role_containment,
    plan_iam_user_containment,
)

INCIDENT = "inc-1"
STS = "https://sts.us-east-1.amazonaws.com"
ALICE = VerifiedCaller(arn="arn:aws:iam::111122223333:user/alice", user_id="AIDAALICE")
POLICY = ResponsePolicy(approvers={"arn:aws:iam::111122223333:user/alice": {"roles": ["approver"]}})
DEMO = ResponsePolicy(require_proof=False, approvers={"alice": {"roles": ["approver"]}})


def _proof(verb: str = "reject", comment: str = "scheduled pentest", incident: str = INCIDENT) -> dict:
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE0000001", aws_secret_access_key="s3cret")
    signed = sign_decision(session, STS, incident_id=incident, verb=verb, comment=comment)
    return signed.model_dump()


def _pending() -> PendingDecision:
    return PendingDecision(
        kind="containment", question="?", options=["approve", "reject"], since=datetime(2026, 1, 1, tzinfo=UTC)
    )


def _refusal(raw: dict, policy=POLICY, pending=None, caller=None, used=(), now=None, kind=DecisionKind.REJECT):
    request, refusal = decision_refusal(
        kind,
        raw,
        policy,
        pending,
        [],
        False,
        "analyst_decision",
        caller,
        incident_id=INCIDENT,
        used_proofs=used,
        now=now or datetime.now(UTC),
    )
    return refusal


def test_a_fresh_proof_for_this_decision_passes_the_checks_before_sts():
    assert _refusal({"reason": "scheduled pentest", "proof": _proof()}, pending=_pending()) is None


def test_a_proof_is_refused_when_missing_reused_elsewhere_bound_or_stale():
    reason = {"reason": "scheduled pentest"}
    assert "needs a proof" in _refusal({**reason, "by": "alice"})
    proof = _proof()
    request, _ = decision_refusal(
        DecisionKind.REJECT, {**reason, "proof": proof}, POLICY, None, [], False, "x",
        incident_id=INCIDENT, used_proofs=(), now=datetime.now(UTC),
    )  # fmt: skip
    used = (request.proof.proof_id,)
    assert "already used" in _refusal({**reason, "proof": proof}, used=used)
    assert "proof refused: the proof is for incident inc-2" in _refusal({**reason, "proof": _proof(incident="inc-2")})
    assert "proof refused: the proof is for approve" in _refusal({**reason, "proof": _proof(verb="approve")})
    assert "proof refused" in _refusal({"reason": "other words", "proof": _proof()}), "its words are signed too"
    late = datetime.now(UTC) + POLICY.proof_max_age + timedelta(seconds=5)
    assert "proof refused: the proof expired" in _refusal({**reason, "proof": proof}, now=late)
    assert _refusal({**reason, "proof": proof}, now=datetime.now(UTC) + POLICY.proof_max_age / 2) == (
        "no decision is pending (phase analyst_decision)"
    ), "fresh until its maximum age"


def test_a_good_proof_still_needs_a_decision_to_be_pending():
    refusal = _refusal({"reason": "scheduled pentest", "proof": _proof()})
    assert refusal == "no decision is pending (phase analyst_decision)"


def test_in_demo_mode_a_name_decides_and_no_name_is_refused():
    assert _refusal({"reason": "x", "by": "alice"}, policy=DEMO, pending=_pending()) is None
    assert _refusal({"reason": "x"}, policy=DEMO, pending=_pending()) == (
        "invalid request: by: who decides? send a proof (or, in demo mode, a name)"
    )
    assert _refusal({"reason": "x", "by": "mallory"}, policy=DEMO, pending=_pending()) == (
        "'mallory' is not a configured approver (IRFLOW_APPROVERS)"
    )


def test_an_invalid_request_says_which_field_and_why():
    refusal = _refusal({"by": "alice"}, policy=DEMO, pending=_pending())
    assert refusal.startswith("invalid request: reason: "), refusal
    assert "body" in _refusal([], policy=DEMO, pending=_pending()), "a request that is no object at all"


def test_a_verified_caller_decides_by_its_arn_and_a_note_needs_no_pending_decision():
    note = {"text": "looked at it"}
    assert _refusal(note, caller=ALICE, kind=DecisionKind.NOTE) is None
    assert _refusal({"reason": "x"}, caller=ALICE, pending=_pending()) is None
    assert _refusal({"reason": "x"}, caller=ALICE) == "no decision is pending (phase analyst_decision)"
    stranger = VerifiedCaller(arn="arn:aws:iam::111122223333:user/bob")
    assert _refusal({"reason": "x"}, caller=stranger, pending=_pending()) == (
        "'arn:aws:iam::111122223333:user/bob' is not a configured approver (IRFLOW_APPROVERS)"
    )


def test_the_finding_names_its_principal_by_user_key_or_session():
    key = parse_guardduty(sample_access_key_finding("ci-deployer", "AKIAEXAMPLE000000001")).finding
    assert affected_principal(["ci-deployer"], [key]) == "ci-deployer"
    assert affected_principal(["CI-Deployer"], [key]) == "CI-Deployer", "names are compared without case"
    assert affected_principal(["AKIAEXAMPLE000000001"], [key]) == "AKIAEXAMPLE000000001"
    assert affected_principal(["arn:aws:iam::1:user/ci-deployer"], [key]) == "arn:aws:iam::1:user/ci-deployer"
    assert affected_principal(["alice", "bob"], [key]) is None
    role = parse_guardduty(sample_role_finding("web-app-role", "AROAEXAMPLE", None)).finding
    assert role.resource.principal_id == "AROAEXAMPLE:exfiltrated-session"
    assert affected_principal(["AROAEXAMPLE:exfiltrated-session"], [role]) == "AROAEXAMPLE:exfiltrated-session"
    assert affected_principal(["exfiltrated-session"], [role]) == "exfiltrated-session", "the session name alone"
    session_arn = "arn:aws:sts::1:assumed-role/web-app-role/exfiltrated-session"
    assert affected_principal([session_arn], [role]) == session_arn, "its session ARN"


def test_only_arn_entries_name_verified_approvers():
    approvers = {"*": {"roles": ["approver"]}, "alice": {"roles": ["approver"]}}
    assert approver_for(ResponsePolicy(approvers=approvers).approvers, ALICE.arn) is None
    both = ResponsePolicy(
        approvers={
            "arn:aws:iam::111122223333:user/*": {"roles": ["analyst"], "principals": ["ci"]},
            "arn:aws:iam::111122223333:user/alice": {"roles": ["approver", "analyst"], "principals": ["ops"]},
        }
    )
    merged = approver_for(both.approvers, ALICE.arn)
    assert merged.roles == ["analyst", "approver"], "every matching entry's roles, once each, sorted"
    assert sorted(merged.principals) == ["ci", "ops"]


def test_the_moment_refusals_say_what_was_decided_or_what_can_be():
    proof = {"reason": "scheduled pentest", "proof": _proof()}
    taken = decision_refusal(
        DecisionKind.REJECT, proof, POLICY, _pending(), [], True, "x",
        incident_id=INCIDENT, used_proofs=(), now=datetime.now(UTC),
    )[1]  # fmt: skip
    assert taken == "a decision was already taken", "a proof-bearing request meets the same moment checks"
    release = _refusal({"comment": "clean", "by": "alice"}, policy=DEMO, pending=_pending(), kind=DecisionKind.RELEASE)
    assert release == "release is not an option when deciding containment (approve, reject)"


def test_refusals_word_the_proof_rules_and_the_roles_exactly():
    assert _refusal({"reason": "x", "by": "alice"}) == (
        "a decision needs a proof of who decides (irflow signs one with your AWS credentials); "
        "a name alone (--as) is taken only in demo mode (IRFLOW_DECISIONS_REQUIRE_PROOF=false)"
    )
    proof = _proof()
    request = decision_refusal(
        DecisionKind.REJECT, {"reason": "scheduled pentest", "proof": proof}, POLICY, None, [], False, "x",
        incident_id=INCIDENT, used_proofs=(), now=datetime.now(UTC),
    )[0]  # fmt: skip
    assert _refusal({"reason": "scheduled pentest", "proof": proof}, used=(request.proof.proof_id,)) == (
        "this proof was already used for a decision: each proof is good for one decision, sign a new one"
    )
    analysts = ResponsePolicy(require_proof=False, approvers={"dave": {"roles": ["analyst"]}})
    assert _refusal({"reason": "x", "by": "dave"}, policy=analysts, pending=_pending()) == (
        "dave (analyst) may not reject: only approvers decide"
    )


def test_a_proof_binds_the_eradication_chosen():
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE0000001", aws_secret_access_key="s3cret")
    proof = sign_decision(session, STS, incident_id=INCIDENT, verb="approve", comment="", choice="stop").model_dump()
    pending = _pending()
    assert _refusal({"eradication": "stop", "proof": proof}, pending=pending, kind=DecisionKind.APPROVE) is None
    assert "proof refused: the proof chose stop" in _refusal(
        {"eradication": "terminate", "proof": proof}, pending=pending, kind=DecisionKind.APPROVE
    )


def test_an_invalid_request_names_every_field_by_its_path():
    refusal = _refusal({"reason": "", "proof": {"headers": 5}}, policy=DEMO, pending=_pending())
    assert refusal == (
        "invalid request: proof.headers: Input should be a valid dictionary; "
        "reason: String should have at least 1 character"
    )
    assert _refusal([], policy=DEMO, pending=_pending()).startswith("invalid request: body: ")


# --- the plan's reasons, word for word: what the analyst reads before deciding ---


def _user(**fields) -> IamUserContext:
    return IamUserContext(
        user_name="ciso", user_arn="arn:aws:iam::123456789012:user/ciso", user_id="AIDACISO", captured_at=NOW, **fields
    )


def _key_finding(severity: float = 8.0):
    event = sample_access_key_finding("ciso", "AKIAEXAMPLECISO00001", "123456789012", "us-east-1", severity=severity)
    return parse_guardduty(event).finding


def test_a_user_plan_says_which_key_goes_and_what_the_user_lacks():
    key = AccessKeyState(access_key_id="AKIAEXAMPLECISO00001", status="Active")
    plan = plan_iam_user_containment(
        [_key_finding()], _user(access_keys=[key], has_login_profile=True), "AKIAEXAMPLECISO00001", ResponsePolicy()
    )
    assert plan.reasons[1:] == [
        "access key AKIAEXAMPLECISO00001 (Active) will be deactivated, not deleted",
        "sessions of ciso issued before containment will be denied; after approval the key and the console password "
        "(present) are deleted",
        "the user has no MFA device",
    ]
    other = plan_iam_user_containment([_key_finding()], _user(mfa_devices=["arn:mfa"]), None, ResponsePolicy())
    assert other.reasons[1:] == [
        "the finding names no key of this user: no key is deactivated",
        "sessions of ciso issued before containment will be denied; after approval the key and the console password "
        "are deleted",
    ]


def test_a_sample_finding_and_a_tag_are_named_with_what_they_hold():
    sample = _key_finding()
    sample = sample.model_copy(update={"sample": True})
    plan = plan_iam_user_containment([sample], _user(tags={"irflow:protected": "true"}), None, ResponsePolicy())
    assert "GuardDuty marks this as a sample finding: containment waits for an analyst" in plan.reasons
    assert "user is tagged irflow:protected=true: never contained automatically; two different approvers decide" in (
        plan.reasons
    )
    manual = {"irflow:containment": "manual"}
    role = IamRoleContext(
        role_name="app", role_arn="arn:aws:iam::1:role/app", role_id="AROA", tags=manual, captured_at=NOW
    )
    finding = parse_guardduty(sample_role_finding("app", "AROA", None)).finding
    role_plan = plan_iam_role_containment([finding], role, None, [], ResponsePolicy())
    assert "role is tagged irflow:containment=manual: containment waits for an analyst" in role_plan.reasons


def test_an_instance_plan_names_the_instance_its_profile_and_its_networks():
    running = plan_ec2_containment([_finding(8.0)], _context({"irflow:containment": "manual"}), ResponsePolicy())
    assert "instance is tagged irflow:containment=manual: containment waits for an analyst" in running.reasons
    assert not any("not running" in reason for reason in running.reasons), "a running instance is not remarked on"
    profile = InstanceProfileState(
        association_id="iip-assoc-1", profile_arn="arn:aws:iam::1:instance-profile/p", profile_name="p", role_names=[]
    )
    bare = _context(instance_profile=profile).model_copy(update={"network_interfaces": []})
    reasons = plan_ec2_containment([_finding(8.0)], bare, ResponsePolicy()).reasons
    assert reasons[-2].startswith("instance profile p (no role): profile replaced"), reasons[-2]
    assert reasons[-1] == "0 network interface(s) in no VPC will be isolated; 2 volume(s) will be snapshotted"
    two = _context(instance_profile=profile.model_copy(update={"role_names": ["r1", "r2"]})).model_copy(
        update={
            "network_interfaces": [
                NetworkInterfaceState(network_interface_id="eni-1", vpc_id="vpc-a", group_ids=["sg-1"]),
                NetworkInterfaceState(network_interface_id="eni-2", vpc_id="vpc-b", device_index=1, group_ids=["sg-2"]),
            ]
        }
    )
    reasons = plan_ec2_containment([_finding(8.0)], two, ResponsePolicy()).reasons
    assert reasons[-2].startswith("instance profile p (r1, r2): profile replaced"), reasons[-2]
    assert reasons[-1].startswith("2 network interface(s) in vpc-a, vpc-b will be isolated"), reasons[-1]
