"""The containment plan: whether it waits for an analyst (or, for a protected subject, two), and why; who may
decide what, when. Pure: no AWS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from irflow.devstack.demo import sample_access_key_finding, sample_finding, sample_role_finding
from irflow.devstack.demo_rds import sample_rds_finding
from irflow.models.ec2 import (
    AutoScalingMembership,
    InstanceContext,
    InstanceProfileState,
    NetworkInterfaceState,
    TargetGroupRegistration,
    VolumeAttachment,
)
from irflow.models.finding import Finding, Severity, parse_guardduty
from irflow.models.iam import IamRoleContext, IamRoleTarget, IamUserContext
from irflow.models.incident import Decision, DecisionKind, Eradication, PendingDecision, ResponsePolicy
from irflow.models.proof import VerifiedCaller
from irflow.models.rds import DbClusterContext, DbInstanceContext, DbInstanceMember, DbTarget
from workflows.policy import (
    PROTECTED_APPROVALS,
    approvals_required,
    approver_for,
    decision_refusal,
    eradication_choice,
    incident_severity,
    plan_ec2_containment,
    plan_iam_role_containment,
    plan_iam_user_containment,
)
from workflows.rds_playbook import plan_rds_containment

INSTANCE_ID = "i-0a1b2c3d4e5f60718"
ACCOUNT, REGION = "111122223333", "us-east-1"
NOW = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def _finding(severity: float = 8.0, sample: bool = False, finding_type: str | None = None) -> Finding:
    event = sample_finding(INSTANCE_ID, ACCOUNT, REGION, severity=severity, finding_type=finding_type)
    if sample:
        event["detail"]["service"]["additionalInfo"]["sample"] = True
    return parse_guardduty(event).finding


def _context(tags: dict[str, str] | None = None, state: str = "running", **extra) -> InstanceContext:
    return InstanceContext(
        instance_id=INSTANCE_ID,
        account_id=ACCOUNT,
        region=REGION,
        state=state,
        network_interfaces=[
            NetworkInterfaceState(network_interface_id="eni-0001", vpc_id="vpc-0aaa", group_ids=["sg-web"]),
            NetworkInterfaceState(
                network_interface_id="eni-0002", vpc_id="vpc-0aaa", device_index=1, group_ids=["sg-admin"]
            ),
        ],
        volumes=[
            VolumeAttachment(volume_id="vol-0001", device_name="/dev/xvda"),
            VolumeAttachment(volume_id="vol-0002", device_name="/dev/sdf"),
        ],
        tags=tags or {"Name": "web-1"},
        captured_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        **extra,
    )


def _full_context() -> InstanceContext:
    return _context(
        auto_scaling=AutoScalingMembership(group_name="shop-web", min_size=2, max_size=4, desired_capacity=2),
        target_groups=[
            TargetGroupRegistration(target_group_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/a/1"),
            TargetGroupRegistration(target_group_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/b/2"),
        ],
        instance_profile=InstanceProfileState(
            association_id="iip-assoc-1",
            profile_arn="arn:aws:iam::111122223333:instance-profile/web-app",
            profile_name="web-app",
            role_names=["web-app-role"],
        ),
    )


def _reasons(plan) -> str:
    return "\n".join(plan.reasons)


@pytest.mark.parametrize(
    ("score", "requires_approval"),
    [(2.0, True), (3.9, True), (4.0, False), (5.0, False), (8.0, False), (9.5, False)],
)
def test_default_policy_auto_contains_from_medium_up(score, requires_approval):
    plan = plan_ec2_containment([_finding(score)], _context(), ResponsePolicy())
    assert plan.requires_approval is requires_approval
    assert ("below the auto-containment threshold" in _reasons(plan)) is requires_approval


def test_severity_below_a_raised_threshold_waits_for_an_analyst():
    policy = ResponsePolicy(auto_contain_min_severity=Severity.HIGH)
    plan = plan_ec2_containment([_finding(5.0)], _context(), policy)
    assert plan.severity == Severity.MEDIUM
    assert plan.requires_approval is True
    assert "HIGH" in _reasons(plan)


def test_high_severity_meets_a_high_threshold():
    policy = ResponsePolicy(auto_contain_min_severity=Severity.HIGH)
    plan = plan_ec2_containment([_finding(8.0)], _context(), policy)
    assert plan.severity == Severity.HIGH
    assert plan.requires_approval is False


@pytest.mark.parametrize("value", ["manual", "Manual", "MANUAL"])
def test_manual_containment_tag_waits_for_an_analyst(value):
    plan = plan_ec2_containment([_finding(9.0)], _context({"irflow:containment": value}), ResponsePolicy())
    assert plan.requires_approval is True
    assert "irflow:containment=manual" in _reasons(plan)


def test_other_values_of_the_containment_tag_do_not_hold_containment():
    plan = plan_ec2_containment([_finding(9.0)], _context({"irflow:containment": "auto"}), ResponsePolicy())
    assert plan.requires_approval is False


def test_policy_may_name_its_own_manual_tag():
    policy = ResponsePolicy(manual_containment_tag="soc:hands-off")
    held = plan_ec2_containment([_finding(9.0)], _context({"soc:hands-off": "manual"}), policy)
    ignored = plan_ec2_containment([_finding(9.0)], _context({"irflow:containment": "manual"}), policy)
    assert held.requires_approval is True
    assert ignored.requires_approval is False


def test_sample_finding_waits_for_an_analyst_even_when_critical():
    plan = plan_ec2_containment([_finding(9.5, sample=True)], _context(), ResponsePolicy())
    assert plan.requires_approval is True
    assert "sample" in _reasons(plan)


def test_one_sample_among_real_findings_still_waits():
    findings = [_finding(9.0), _finding(8.0, sample=True)]
    assert plan_ec2_containment(findings, _context(), ResponsePolicy()).requires_approval is True


def test_reasons_explain_auto_scaling_target_groups_and_profile():
    plan = plan_ec2_containment([_finding(8.0)], _full_context(), ResponsePolicy())
    reasons = _reasons(plan)
    assert "Auto Scaling group shop-web" in reasons
    assert "2 target group(s)" in reasons
    assert "web-app" in reasons and "web-app-role" in reasons
    assert "2 network interface(s) in vpc-0aaa" in reasons
    assert "2 volume(s)" in reasons
    assert plan.requires_approval is False


def test_reasons_leave_out_what_the_instance_does_not_have():
    reasons = _reasons(plan_ec2_containment([_finding(8.0)], _context(), ResponsePolicy()))
    assert "Auto Scaling" not in reasons
    assert "target group" not in reasons
    assert "instance profile" not in reasons


def test_reasons_name_the_finding_type_and_score():
    finding = _finding(7.2, finding_type="CryptoCurrency:EC2/BitcoinTool.B!DNS")
    reasons = plan_ec2_containment([finding], _context(), ResponsePolicy()).reasons
    assert "CryptoCurrency:EC2/BitcoinTool.B!DNS" in reasons[0]
    assert "7.2" in reasons[0]


def test_a_stopped_instance_is_noted():
    reasons = _reasons(plan_ec2_containment([_finding(8.0)], _context(state="stopped"), ResponsePolicy()))
    assert "stopped" in reasons


def test_incident_severity_is_the_highest_of_its_findings():
    findings = [_finding(2.0), _finding(9.1), _finding(5.0)]
    assert incident_severity(findings) == Severity.CRITICAL
    assert incident_severity(findings[:1]) == Severity.LOW
    assert incident_severity([_finding(5.0), _finding(7.0)]) == Severity.HIGH


def test_a_later_severe_finding_lifts_the_plan_past_the_threshold():
    findings = [_finding(2.0), _finding(8.0)]
    plan = plan_ec2_containment(findings, _context(), ResponsePolicy())
    assert plan.severity == Severity.HIGH
    assert plan.requires_approval is False


def test_first_reason_does_not_pair_one_findings_score_with_anothers_band():
    """Incident of a LOW (2.0) then a HIGH (8.0) finding: the reason must not read 'severity 2.0 (HIGH)'."""
    plan = plan_ec2_containment([_finding(2.0), _finding(8.0)], _context(), ResponsePolicy())
    assert "2.0 (HIGH)" not in plan.reasons[0], plan.reasons[0]


# --- who may decide what, when: the rule book behind updates and signals ---


def _pending(**changes) -> PendingDecision:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return PendingDecision(
        kind="eradication", question="?", options=["approve", "reject", "release"], since=now
    ).model_copy(update=changes)


def _rules(kind, raw, pending=None, decided=False, findings=None):
    policy = ResponsePolicy(
        require_proof=False,
        approvers={
            "alice": {"roles": ["approver"]},
            "dave": {"roles": ["analyst"]},
            "mallory": {"roles": ["approver"], "principals": ["arn:aws:iam::123456789012:user/ci-deployer"]},
        },
    )
    leaked = parse_guardduty(sample_access_key_finding("ci-deployer", "AKIAEXAMPLE000000001")).finding
    return decision_refusal(
        kind,
        raw,
        policy,
        pending,
        findings or [leaked],
        decided,
        "analyst_decision",
        incident_id="x",
        used_proofs=(),
        now=NOW,
    )[1]


def test_the_rule_book_refuses_strangers_analysts_the_affected_principal_and_double_approvals():
    pending = _pending()
    assert _rules(DecisionKind.APPROVE, {"by": "alice"}, pending) is None
    assert "not a configured approver" in _rules(DecisionKind.APPROVE, {"by": "eve"}, pending)
    assert _rules(DecisionKind.NOTE, {"by": "dave", "text": "seen"}) is None, "notes need no pending decision"
    assert "only approvers decide" in _rules(DecisionKind.REJECT, {"by": "dave", "reason": "x"}, pending)
    assert "nobody decides their own incident" in _rules(DecisionKind.APPROVE, {"by": "mallory"}, pending)
    assert "invalid request" in _rules(DecisionKind.REJECT, {"by": "alice"}, pending)
    assert "no decision is pending" in _rules(DecisionKind.APPROVE, {"by": "alice"})
    assert "already taken" in _rules(DecisionKind.APPROVE, {"by": "alice"}, pending, decided=True)
    assert "second, different approver" in _rules(DecisionKind.APPROVE, {"by": "alice"}, _pending(approvals=["alice"]))
    assert "not an option" in _rules(
        DecisionKind.RELEASE, {"by": "alice", "comment": "x"}, _pending(options=["approve"])
    )


def test_two_approvers_only_for_eradication_at_or_above_the_two_person_severity():
    policy = ResponsePolicy(two_person_min_severity=Severity.HIGH)
    assert approvals_required("eradication", Severity.HIGH, policy) == 2
    assert approvals_required("eradication", Severity.CRITICAL, policy) == 2
    assert approvals_required("eradication", Severity.MEDIUM, policy) == 1
    assert approvals_required("containment", Severity.CRITICAL, policy) == 1


def test_the_latest_approval_that_names_an_eradication_decides_it():
    at = datetime(2026, 11, 28, tzinfo=UTC)

    def approval(by: str, eradication: Eradication | None) -> Decision:
        return Decision(kind=DecisionKind.APPROVE, by=by, at=at, eradication=eradication, via="update")

    assert eradication_choice([]) is None
    assert eradication_choice([approval("alice", None)]) is None
    terminate, stop = Eradication.TERMINATE, Eradication.STOP
    assert eradication_choice([approval("alice", terminate), approval("bob", None)]) == terminate
    assert eradication_choice([approval("alice", terminate), approval("bob", stop)]) == stop


# --- decisions with proofs: who decides is the principal STS verified ---

ALICE = VerifiedCaller(arn="arn:aws:iam::111122223333:user/alice", user_id="AIDAALICE", access_key_id="AKIAALICE")
SESSION = VerifiedCaller(arn="arn:aws:sts::111122223333:assumed-role/IR-Approver/carol", user_id="AROAIR:carol")
PROVEN = ResponsePolicy(
    approvers={
        "arn:aws:iam::111122223333:user/alice": {"roles": ["approver"]},
        "arn:aws:sts::111122223333:assumed-role/IR-Approver/*": {"roles": ["approver"]},
        "arn:aws:iam::111122223333:user/*": {"roles": ["analyst"]},
        "alice": {"roles": ["approver"]},
    }
)


def _proven(kind, raw, caller, pending=None, findings=()):
    pending = pending or _pending()
    found = list(findings)
    return decision_refusal(
        kind, raw, PROVEN, pending, found, False, "x", caller, incident_id="x", used_proofs=(), now=NOW
    )[1]


def test_arn_globs_name_the_approvers_and_names_count_only_in_demo_mode():
    assert approver_for(PROVEN.approvers, ALICE.arn).roles == ["analyst", "approver"]
    assert approver_for(PROVEN.approvers, SESSION.arn).roles == ["approver"]
    assert approver_for(PROVEN.approvers, "arn:aws:iam::111122223333:user/bob").roles == ["analyst"]
    assert approver_for(PROVEN.approvers, "arn:aws:iam::444455556666:user/alice") is None
    assert _proven(DecisionKind.APPROVE, {}, ALICE) is None
    assert _proven(DecisionKind.APPROVE, {}, SESSION) is None
    assert "only approvers decide" in _proven(
        DecisionKind.APPROVE, {}, VerifiedCaller(arn="arn:aws:iam::111122223333:user/bob")
    )
    assert "needs a proof" in _proven(DecisionKind.APPROVE, {"by": "alice"}, None), "a name alone is refused"


def test_the_two_person_rule_counts_verified_principals_not_names():
    pending = _pending(approvals=[ALICE.arn], approvals_required=2)
    assert "already approved" in _proven(DecisionKind.APPROVE, {"by": "bob"}, ALICE, pending)
    assert _proven(DecisionKind.APPROVE, {"by": "alice"}, SESSION, pending) is None


def test_a_verified_principal_named_in_the_finding_cannot_decide_it():
    leaked = parse_guardduty(sample_access_key_finding("alice", "AKIAALICE")).finding
    assert "nobody decides their own incident" in _proven(
        DecisionKind.REJECT, {"reason": "mine"}, ALICE, None, [leaked]
    )
    carol = parse_guardduty(sample_access_key_finding("carol", "AKIAOTHER")).finding
    assert "nobody decides their own incident" in _proven(DecisionKind.APPROVE, {}, SESSION, None, [carol])


# --- protected subjects: never contained without two different approvers (docs/threat-model.md) ---


def _protection(plan) -> str | None:
    """Why the plan waits for two approvers (its reasons), or None when it does not."""
    if plan.approvals_required != PROTECTED_APPROVALS:
        assert not plan.protected and plan.approvals_required == 1
        return None
    assert plan.protected and plan.requires_approval
    return _reasons(plan)


def _user_plan(policy: ResponsePolicy, tags: dict[str, str] | None = None):
    event = sample_access_key_finding("ciso", "AKIAEXAMPLECISO00001", "123456789012", "us-east-1", severity=8.0)
    finding = parse_guardduty(event).finding
    context = IamUserContext(
        user_name="ciso",
        user_arn="arn:aws:iam::123456789012:user/ciso",
        user_id="AIDAEXAMPLECISO",
        tags=tags or {},
        captured_at=NOW,
    )
    return plan_iam_user_containment([finding], context, finding.resource.access_key_id, policy)


def _role_plan(policy: ResponsePolicy, role_arn: str = "arn:aws:iam::123456789012:role/irflow-worker"):
    """The plan for a role as the playbook makes it: the role's own ARN, and the session the finding names."""
    name = role_arn.rsplit("/", 1)[-1]
    finding = parse_guardduty(sample_role_finding(name, "AROAEXAMPLE", None, severity=8.0)).finding
    target = IamRoleTarget(
        incident_id="x", account_id="123456789012", region="us-east-1", principal_id=finding.resource.principal_id
    )
    path = "/" + role_arn.split(":role/", 1)[1].removesuffix(name)
    context = IamRoleContext(role_name=name, role_arn=role_arn, role_id="AROAEXAMPLE", path=path, captured_at=NOW)
    return plan_iam_role_containment([finding], context, target.session_name, [], policy)


def test_a_user_is_protected_by_its_arn_glob_its_tag_or_not_at_all():
    assert _protection(_user_plan(ResponsePolicy())) is None
    glob = ResponsePolicy(protected=["arn:aws:iam::*:user/ci*"])
    assert "arn:aws:iam::123456789012:user/ciso" in _protection(_user_plan(glob)), "known by its own ARN"
    assert "IRFLOW_PROTECTED" in _protection(_user_plan(glob))
    assert _protection(_user_plan(ResponsePolicy(protected=["arn:aws:iam::*:user/cfo"]))) is None
    tagged = _user_plan(ResponsePolicy(), tags={"irflow:protected": "True"})
    assert "irflow:protected=true" in _protection(tagged)
    assert "never contained automatically" in _protection(tagged)


def test_a_role_is_protected_as_irflow_by_its_sessions_or_its_arn():
    own = ResponsePolicy(own_principals=["arn:aws:sts::123456789012:assumed-role/irflow-worker/*"])
    assert "irflow's own principals" in _protection(_role_plan(own))
    by_role = ResponsePolicy(own_principals=["arn:aws:iam::123456789012:role/irflow-worker"])
    assert _protection(_role_plan(by_role)) is not None
    assert _protection(_role_plan(ResponsePolicy(own_principals=["arn:aws:iam::*:role/other"]))) is None


def test_a_role_is_known_by_its_arn_with_its_path():
    """`role/prod/*` names every role under /prod/: the role's real ARN keeps its path."""
    payments = "arn:aws:iam::123456789012:role/prod/payments"
    reason = _protection(_role_plan(ResponsePolicy(protected=["arn:aws:iam::*:role/prod/*"]), payments))
    assert "arn:aws:iam::123456789012:role/prod/payments is protected (IRFLOW_PROTECTED" in reason
    assert _protection(_role_plan(ResponsePolicy(protected=["arn:aws:iam::*:role/payments"]), payments)) is None
    own = ResponsePolicy(own_principals=["arn:aws:iam::*:role/*/payments"])
    assert "irflow's own principals" in _protection(_role_plan(own, payments))


def _aurora(cluster_tags: dict[str, str] | None = None) -> DbInstanceContext:
    cluster = DbClusterContext(
        identifier="orders-cluster",
        arn="arn:aws:rds:us-east-1:123456789012:cluster:orders-cluster",
        engine="aurora-postgresql",
        status="available",
        tags=cluster_tags or {},
        members=["orders-1", "orders-2"],
    )
    members = [
        DbInstanceMember(
            identifier=name,
            arn=f"arn:aws:rds:us-east-1:123456789012:db:{name}",
            status="available",
            publicly_accessible=False,
        )
        for name in cluster.members
    ]
    return DbInstanceContext(
        db_instance_identifier="orders-1",
        db_instance_arn=members[0].arn,
        engine="aurora-postgresql",
        status="available",
        publicly_accessible=False,
        cluster=cluster,
        instances=members,
        captured_at=NOW,
    )


def _db_plan(context: DbInstanceContext, policy: ResponsePolicy):
    finding = parse_guardduty(sample_rds_finding("orders-1", cluster_id="orders-cluster", severity=8.0)).finding
    target = DbTarget(incident_id="x", account_id="123456789012", region="us-east-1", db_instance_identifier="orders-1")
    return plan_rds_containment([finding], context, target, policy)


def test_an_aurora_cluster_is_protected_by_its_own_tag_or_arn_and_so_is_every_member():
    assert _protection(_db_plan(_aurora(), ResponsePolicy())) is None
    tagged = _protection(_db_plan(_aurora({"irflow:protected": "true"}), ResponsePolicy()))
    assert "Aurora cluster is tagged irflow:protected=true" in tagged
    by_cluster = ResponsePolicy(protected=["arn:aws:rds:*:*:cluster:orders-*"])
    assert "cluster:orders-cluster is protected" in _protection(_db_plan(_aurora(), by_cluster))
    other_member = ResponsePolicy(protected=["arn:aws:rds:*:*:db:orders-2"])
    assert "db:orders-2 is protected" in _protection(_db_plan(_aurora(), other_member)), "containment changes it too"


def test_an_instance_is_known_by_its_arn():
    policy = ResponsePolicy(protected=[f"arn:aws:ec2:*:{ACCOUNT}:instance/{INSTANCE_ID}"])
    assert f"instance/{INSTANCE_ID} is protected" in _protection(
        plan_ec2_containment([_finding(8.0)], _context(), policy)
    )
    assert (
        _protection(plan_ec2_containment([_finding(8.0)], _context({"irflow:protected": "false"}), ResponsePolicy()))
        is None
    )
