"""Incident keys: one incident per user, role, bucket, database or attack sequence, whichever playbooks this
version runs, and never a user name or access key in clear in the key (it is the workflow id)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import irflow.intake.router as router
from irflow.devstack.demo import sample_finding
from irflow.intake.router import (
    ALL_PLAYBOOKS,
    EC2_PLAYBOOK,
    IAM_ROLE_PLAYBOOK,
    IAM_USER_PLAYBOOK,
    RDS_PLAYBOOK,
    S3_PLAYBOOK,
    SEQUENCE_PLAYBOOK,
    TRIAGE_PLAYBOOK,
    incident_id,
    route,
)
from irflow.models.asff import parse_asff
from irflow.models.finding import parse_guardduty
from irflow.models.identifiers import incident_id_refusal
from tests.irflow.intake.router_support import (
    ACCESS_KEY,
    ACCOUNT,
    BUCKET,
    GUARDDUTY_CORPUS,
    INSTANCE_ID,
    OTHER_USER_NAME,
    REGION,
    ROLE_NAME,
    SESSION_KEY,
    USER_NAME,
    WORKFLOW_ID_CHARACTERS,
    _access_key,
    _buckets,
    _expected_playbook,
    _finding,
    _role_session_finding,
    _user_finding,
)

# --- incident keys of identities ---

# Which playbooks run: this version's, the first version's (EC2 and triage only), every playbook. Keys
# must keep identities out of clear text, and one identity in one incident, whichever it is.
AVAILABILITY = {
    "this-version": None,
    "ec2-and-triage-only": frozenset({EC2_PLAYBOOK, TRIAGE_PLAYBOOK}),
    "every-playbook": frozenset(ALL_PLAYBOOKS),
}


@pytest.fixture(params=list(AVAILABILITY))
def available(request, monkeypatch) -> frozenset[str]:
    if AVAILABILITY[request.param] is not None:
        monkeypatch.setattr(router, "AVAILABLE_PLAYBOOKS", AVAILABILITY[request.param])
    return router.AVAILABLE_PLAYBOOKS


def _assert_anonymous(key: str) -> None:
    assert WORKFLOW_ID_CHARACTERS.fullmatch(key), key
    for identity in (USER_NAME, OTHER_USER_NAME, ACCESS_KEY, SESSION_KEY, ROLE_NAME, "alice", "martin"):
        assert identity not in key, key
    assert ACCOUNT in key and REGION in key


def test_user_names_and_access_keys_never_appear_in_clear_in_the_incident_key(available):
    user, role = route(_user_finding()), route(_role_session_finding())
    assert user.playbook == (IAM_USER_PLAYBOOK if IAM_USER_PLAYBOOK in available else TRIAGE_PLAYBOOK)
    assert role.playbook == (IAM_ROLE_PLAYBOOK if IAM_ROLE_PLAYBOOK in available else TRIAGE_PLAYBOOK)
    assert user.incident_key.startswith("iam-user-" if user.playbook == IAM_USER_PLAYBOOK else "triage-accesskey-")
    assert role.incident_key.startswith("iam-role-" if role.playbook == IAM_ROLE_PLAYBOOK else "triage-accesskey-")
    for destination in (user, role, route(_user_finding(access_key_id=SESSION_KEY))):
        _assert_anonymous(destination.incident_key)
        assert "alice" not in destination.reason and ROLE_NAME not in destination.reason


def test_two_findings_about_the_same_user_and_key_join_one_incident(available):
    tor = route(_user_finding("UnauthorizedAccess:IAMUser/TorIPCaller", finding_id="tor01"))
    recon = route(_user_finding("Recon:IAMUser/MaliciousIPCaller", finding_id="recon01"))
    assert tor.incident_key == recon.incident_key
    other_user = route(_user_finding(user_name=OTHER_USER_NAME, access_key_id="AKIAOTHEROTHEROTHER1"))
    assert other_user.incident_key != tor.incident_key
    elsewhere = route(parse_guardduty(_event_in_account("444455556666")).finding)
    assert elsewhere.incident_key != tor.incident_key


def test_two_findings_about_the_same_user_through_different_keys_join_one_incident(available):
    """The user is the resource: a console session (ASIA key) and a long-term key (AKIA) of one user are
    one incident, whether the IAM user playbook or triage answers."""
    long_term = route(_user_finding(finding_id="k1", access_key_id=ACCESS_KEY))
    session = route(_user_finding("UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B", "k2", access_key_id=SESSION_KEY))
    assert long_term.playbook == session.playbook
    assert long_term.incident_key == session.incident_key


def test_two_sessions_of_the_same_role_join_one_incident(available):
    """Each session of a role has its own ASIA key; the role is the resource."""
    first = route(_role_session_finding("ASIAFIRSTSESSION0001", finding_id="s1"))
    second = route(_role_session_finding("ASIASECONDSESSION002", finding_id="s2"))
    assert first.incident_key == second.incident_key


def _event_in_account(account: str) -> dict[str, Any]:
    event = sample_finding(INSTANCE_ID, account, REGION, finding_type="UnauthorizedAccess:IAMUser/TorIPCaller")
    event["detail"]["resource"] = {"resourceType": "AccessKey", "accessKeyDetails": _access_key()}
    return event


def test_root_credentials_go_to_triage_only_whatever_the_playbooks(available):
    finding = _user_finding(
        "Policy:IAMUser/RootCredentialUsage", user_type="Root", user_name="Root", access_key_id=SESSION_KEY
    )
    destination = route(finding)
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "root" in destination.reason.lower()
    assert SESSION_KEY not in destination.incident_key
    assert WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key)


def test_each_attack_sequence_is_an_incident_of_its_own():
    first = _finding("AttackSequence:IAM/CompromisedCredentials", {"resourceType": "AttackSequence"}, "seq0001")
    second = _finding("AttackSequence:IAM/CompromisedCredentials", {"resourceType": "AttackSequence"}, "seq0002")
    one, two = route(first), route(second)
    assert one.playbook == two.playbook == SEQUENCE_PLAYBOOK
    assert "attack sequence" in one.reason
    assert one.incident_key == f"sequence-{ACCOUNT}-{REGION}-finding-seq0001"
    assert one.incident_key != two.incident_key
    assert route(first).incident_key == one.incident_key  # an update of the same sequence joins it
    assert WORKFLOW_ID_CHARACTERS.fullmatch(one.incident_key)


def test_an_attack_sequence_sent_to_triage_by_an_override_keeps_an_incident_of_its_own():
    sequence = _finding("AttackSequence:IAM/CompromisedCredentials", {"resourceType": "AttackSequence"}, "seq0003")
    destination = route(sequence, {"AttackSequence:*": TRIAGE_PLAYBOOK})
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert destination.incident_key == f"triage-attacksequence-{ACCOUNT}-{REGION}-finding-seq0003"


def test_the_attack_sequences_of_the_corpus_each_open_their_own_sequence_incident():
    sequences = [
        parse_guardduty(line["event_eventbridge"]).finding
        for line in GUARDDUTY_CORPUS
        if line["event_eventbridge"]["detail"]["type"].startswith("AttackSequence:")
    ]
    assert len(sequences) == 2
    keys = {route(f).incident_key for f in sequences}
    assert len(keys) == 2
    assert {route(f).playbook for f in sequences} == {SEQUENCE_PLAYBOOK}
    # Stripped of their details, they name no resource: an incident each, and nothing to fan out.
    assert [(f.sequence_resources, f.sequence_resources_named) for f in sequences] == [((), 0), ((), 0)]


# --- bucket findings ---


def test_a_malicious_object_finding_joins_the_incident_of_its_bucket(available):
    """Malware Protection for S3 names the bucket in s3BucketDetails (with the object inside it): two
    malicious uploads to one bucket are one incident about that bucket, not one incident per finding."""
    obj = {"key": "uploads/a.exe", "objectArn": f"arn:aws:s3:::{BUCKET}/uploads/a.exe"}
    resource = {"resourceType": "S3Object", "s3BucketDetails": _buckets(s3ObjectDetails=[obj])}
    first = route(_finding("Object:S3/MaliciousFile", resource, "object0001"))
    second = route(_finding("Object:S3/MaliciousFile", resource, "object0002"))
    assert first.playbook == _expected_playbook(S3_PLAYBOOK)
    assert first.resource_id == BUCKET
    assert first.incident_key == second.incident_key


def test_s3_findings_from_management_events_are_meant_for_the_bucket_not_the_caller(available):
    """GuardDuty gives S3 findings from CloudTrail management events the resource type AccessKey (with the
    bucket in s3BucketDetails): the bucket made public is what the finding is about, not the key of
    whoever did it, whose deactivation would contain nothing."""
    resource = {"resourceType": "AccessKey", "accessKeyDetails": _access_key(), "s3BucketDetails": _buckets()}
    finding = _finding("Policy:S3/BucketPublicAccessGranted", resource)
    destination = route(finding)
    assert router._intended(finding)[0] == S3_PLAYBOOK
    assert destination.playbook == _expected_playbook(S3_PLAYBOOK)
    assert destination.resource_id == BUCKET
    _assert_anonymous(destination.incident_key)


def test_federation_tokens_go_to_an_analyst_not_to_the_role_playbook():
    federated = route(_user_finding(user_type="FederatedUser", user_name="alice", principal_id="123:alice"))
    assert federated.playbook == TRIAGE_PLAYBOOK
    assert "federation" in federated.reason
    _assert_anonymous(federated.incident_key)


def test_another_incident_can_open_the_instance_incident_for_a_role_finding():
    """A role incident asks for the source instance's incident: the key is the instance's own, so a
    finding reported straight about the instance joins the same incident."""
    role = _role_session_finding()
    instance = role.model_copy(
        update={"resource": role.resource.model_copy(update={"resource_type": "Instance", "instance_id": INSTANCE_ID})}
    )
    opened = route(instance, opened_by=(EC2_PLAYBOOK, "credentials left this instance"))
    direct = route(_finding("Backdoor:EC2/C&CActivity.B", None))
    assert opened.playbook == EC2_PLAYBOOK and opened.reason == "credentials left this instance"
    assert opened.incident_key == direct.incident_key


def test_a_database_named_by_its_arn_or_its_identifier_is_one_incident():
    by_name = _finding(
        "CredentialAccess:RDS/AnomalousBehavior.SuccessfulLogin",
        {"resourceType": "RDSDBInstance", "rdsDbInstanceDetails": {"dbInstanceIdentifier": "orders-db"}},
    )
    by_arn = by_name.model_copy(
        update={
            "resource": by_name.resource.model_copy(
                update={"resource_id": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders-db"}
            )
        }
    )
    assert route(by_name).playbook == route(by_arn).playbook == RDS_PLAYBOOK
    assert route(by_name).incident_key == route(by_arn).incident_key


# --- long resource ids ---


def _other_resource_finding(resource_id: str):
    """A Security Hub finding about a resource irflow has no playbook for, named by `resource_id`."""
    record = {
        "SchemaVersion": "2018-10-08",
        "Id": f"arn:aws:securityhub:{REGION}:{ACCOUNT}:finding/long-resource",
        "ProductArn": f"arn:aws:securityhub:{REGION}::product/aws/guardduty",
        "GeneratorId": "irflow-test",
        "AwsAccountId": ACCOUNT,
        "Types": ["TTPs/Discovery/Discovery:Custom-LongName"],
        "CreatedAt": "2026-01-05T10:00:00Z",
        "UpdatedAt": "2026-01-05T10:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "A resource with a long name",
        "Description": "A resource with a long name.",
        "Resources": [{"Type": "Other", "Id": resource_id, "Partition": "aws", "Region": REGION}],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }
    return parse_asff(record).finding


def test_a_long_resource_id_still_makes_a_valid_incident_id_unique_to_its_resource():
    opened = datetime(2026, 12, 7, 12, 58, 19, tzinfo=UTC)
    stem = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/" + "a" * 400
    first, second = (route(_other_resource_finding(f"{stem[:399]}{end}")) for end in "12")
    assert len(first.resource_id) == 400 and first.playbook == TRIAGE_PLAYBOOK
    for destination in (first, second):
        made = incident_id(destination.incident_key, opened)
        assert incident_id_refusal(made) is None, made
        assert destination.incident_key.startswith(f"triage-other-{ACCOUNT}-{REGION}-arn_aws_ssm_"), "still readable"
    assert first.incident_key != second.incident_key, "ids differing only at their end stay apart"
    assert incident_id(first.incident_key, opened) != incident_id(second.incident_key, opened)
    assert route(_other_resource_finding(f"{stem[:399]}1")).incident_key == first.incident_key, "and stable"
