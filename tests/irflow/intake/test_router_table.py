"""The routing table: every GuardDuty finding type, today's and tomorrow's, reaches a named playbook.

The table routes on the resource a finding names and on its type family, never on a list of type
names. So each of the 204 types in the public catalogue is built here as GuardDuty would send it (the
resource the catalogue says it is about), and must end at a playbook; what the table *means* for it
(before availability) is checked per family. A finding meant for a playbook this version does not run
goes to triage, saying so: the tests read `router.AVAILABLE_PLAYBOOKS`, so they hold as playbooks ship.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from fnmatch import fnmatchcase
from typing import Any

import pytest

import irflow.intake.router as router
from irflow.devstack.demo import sample_finding
from irflow.intake.envelopes import unwrap
from irflow.intake.router import (
    ALL_PLAYBOOKS,
    EC2_PLAYBOOK,
    IAM_ROLE_PLAYBOOK,
    IAM_USER_PLAYBOOK,
    LAMBDA_PLAYBOOK,
    RDS_PLAYBOOK,
    S3_PLAYBOOK,
    TRIAGE_PLAYBOOK,
    Route,
    route,
    type_family,
)
from irflow.models.finding import Finding, FindingRejected, ParsedFinding, parse_guardduty
from irflow.models.settings import IrflowSettings
from tests.support import CORPORA

ACCOUNT, REGION = "111122223333", "eu-west-1"
INSTANCE_ID = "i-0a1b2c3d4e5f60718"
USER_NAME = "alice.martin"
OTHER_USER_NAME = "bob.okafor"
ACCESS_KEY = "AKIAQWERTYUIOPASDF12"
SESSION_KEY = "ASIAZXCVBNMLKJHGFD34"
ROLE_NAME = "web-app-instance-role"
BUCKET = "acme-invoices-prod"
WORKFLOW_ID_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")

CATALOGUE: list[dict[str, Any]] = json.loads((CORPORA / "guardduty" / "finding_types_catalogue.json").read_text())[
    "findings"
]
GUARDDUTY_CORPUS = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").open() if line.strip()]
ASFF_CORPUS = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]


# --- findings as GuardDuty sends them ---


def _access_key(
    user_type: str = "IAMUser",
    user_name: str = USER_NAME,
    access_key_id: str = ACCESS_KEY,
    principal_id: str = "AIDAQWERTYUIOPASDF1234",
) -> dict[str, Any]:
    return {"accessKeyId": access_key_id, "principalId": principal_id, "userName": user_name, "userType": user_type}


def _buckets(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}", "type": "Destination", **extra}]


def _event(finding_type: str, resource: dict[str, Any] | None = None, finding_id: str | None = None) -> dict[str, Any]:
    """The sample GuardDuty EventBridge event with another type and, unless None, another resource."""
    event = sample_finding(INSTANCE_ID, ACCOUNT, REGION, finding_type=finding_type, finding_id=finding_id)
    if resource is not None:
        event["detail"]["resource"] = resource
    return event


def _finding(finding_type: str, resource: dict[str, Any] | None = None, finding_id: str | None = None) -> Finding:
    return parse_guardduty(_event(finding_type, resource, finding_id)).finding


def _user_finding(
    finding_type: str = "UnauthorizedAccess:IAMUser/TorIPCaller", finding_id: str | None = None, **access_key: Any
) -> Finding:
    return _finding(
        finding_type, {"resourceType": "AccessKey", "accessKeyDetails": _access_key(**access_key)}, finding_id
    )


def _role_session_finding(access_key_id: str = SESSION_KEY, finding_id: str | None = None) -> Finding:
    return _user_finding(
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        finding_id,
        user_type="AssumedRole",
        user_name=ROLE_NAME,
        access_key_id=access_key_id,
        principal_id=f"AROAQWERTYUIOPASDF5678:{INSTANCE_ID}",
    )


def _as_guardduty_sends(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the resource GuardDuty puts in a finding of this catalogue type, the playbook the table should
    mean for it). None keeps the sample's EC2 instance."""
    finding_type, about, source = entry["type"], entry["resource_type"], entry["source"]
    family = type_family(finding_type)
    if finding_type.startswith("AttackSequence:"):
        return {"resourceType": "AttackSequence"}, TRIAGE_PLAYBOOK
    if family == "IAMUser":
        if "RootCredentialUsage" in finding_type:
            root = _access_key("Root", "Root", SESSION_KEY, principal_id=ACCOUNT)
            return {"resourceType": "AccessKey", "accessKeyDetails": root}, TRIAGE_PLAYBOOK
        if "CredentialExfiltration" in finding_type:
            # Credentials of an instance's or another resource's role, used from elsewhere.
            role = _access_key(
                "AssumedRole", ROLE_NAME, SESSION_KEY, principal_id=f"AROAQWERTYUIOPASDF5678:{INSTANCE_ID}"
            )
            return {"resourceType": "AccessKey", "accessKeyDetails": role}, IAM_ROLE_PLAYBOOK
        return {"resourceType": "AccessKey", "accessKeyDetails": _access_key()}, IAM_USER_PLAYBOOK
    if family == "S3":
        if about == "AWS Backup":
            # A malicious file in a recovery point: a backup, not a bucket the S3 playbook could contain.
            point = {"backupVaultName": "prod-vault", "recoveryPointArn": "arn:aws:backup:eu-west-1:1:recovery-point:x"}
            return {"resourceType": "RecoveryPoint", "recoveryPointDetails": point}, TRIAGE_PLAYBOOK
        if about == "S3Object":
            obj = {"key": "uploads/invoice.pdf.exe", "objectArn": f"arn:aws:s3:::{BUCKET}/uploads/invoice.pdf.exe"}
            return {"resourceType": "S3Object", "s3BucketDetails": _buckets(s3ObjectDetails=[obj])}, S3_PLAYBOOK
        if source == "CloudTrail management events":
            # GuardDuty: S3 findings from management events have resource type AccessKey, naming the bucket.
            return {
                "resourceType": "AccessKey",
                "accessKeyDetails": _access_key(),
                "s3BucketDetails": _buckets(),
            }, S3_PLAYBOOK
        return {
            "resourceType": "S3Bucket",
            "accessKeyDetails": _access_key(),
            "s3BucketDetails": _buckets(),
        }, S3_PLAYBOOK
    if family in ("EC2", "Runtime"):
        if about == "Amazon EBS":
            snapshot = {"snapshotArn": "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f60718"}
            return {"resourceType": "EBSSnapshot", "ebsSnapshotDetails": snapshot}, TRIAGE_PLAYBOOK
        if about == "AWS Backup":
            point = {"backupVaultName": "prod-vault", "recoveryPointArn": "arn:aws:backup:eu-west-1:1:recovery-point:y"}
            return {"resourceType": "RecoveryPoint", "recoveryPointDetails": point}, TRIAGE_PLAYBOOK
        if finding_type.endswith("!AMI"):
            image = {"imageArn": "arn:aws:ec2:eu-west-1::image/ami-0a1b2c3d4e5f60718"}
            return {"resourceType": "EC2Image", "ec2ImageDetails": image}, TRIAGE_PLAYBOOK
        return None, EC2_PLAYBOOK
    if family == "Kubernetes":
        cluster = {"name": "prod-eks", "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/prod-eks", "status": "ACTIVE"}
        return {"resourceType": "EKSCluster", "eksClusterDetails": cluster, "kubernetesDetails": {}}, TRIAGE_PLAYBOOK
    if family == "ECS":
        cluster = {"name": "prod-ecs", "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod-ecs", "status": "ACTIVE"}
        return {"resourceType": "ECSCluster", "ecsClusterDetails": cluster}, TRIAGE_PLAYBOOK
    if family == "Container":
        container = {"id": "0123456789abcdef", "name": "payments-api", "image": "payments:1.4.2"}
        return {"resourceType": "Container", "containerDetails": container}, TRIAGE_PLAYBOOK
    if family == "Lambda":
        function = {"functionName": "resize-images", "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:r"}
        return {"resourceType": "Lambda", "lambdaDetails": function}, LAMBDA_PLAYBOOK
    if family == "RDS":
        database = {"dbInstanceIdentifier": "orders-db", "engine": "aurora-postgresql", "dbClusterIdentifier": "orders"}
        return {"resourceType": "RDSDBInstance", "rdsDbInstanceDetails": database}, RDS_PLAYBOOK
    raise AssertionError(f"catalogue type {finding_type} ({about}) is of a family this test does not build yet")


def _expected_playbook(intended: str) -> str:
    return intended if intended in router.AVAILABLE_PLAYBOOKS else TRIAGE_PLAYBOOK


def _check_route(destination: Route, intended: str) -> list[str]:
    """What is wrong with routing a finding the table means for `intended`; empty when all is right."""
    problems = []
    if destination.playbook not in ALL_PLAYBOOKS:
        problems.append(f"fell through to {destination.playbook!r}")
    elif destination.playbook not in router.AVAILABLE_PLAYBOOKS:
        problems.append(f"routed to {destination.playbook}, which this version cannot run")
    if destination.playbook != _expected_playbook(intended):
        problems.append(f"meant for {intended}, routed to {destination.playbook} ({destination.reason})")
    if intended not in router.AVAILABLE_PLAYBOOKS and f"the {intended} playbook is not in this version" not in (
        destination.reason
    ):
        problems.append(f"meant for {intended}, not in this version, without saying so: {destination.reason}")
    if not destination.reason.strip():
        problems.append("routed without a reason")
    if not WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key):
        problems.append(f"unsafe incident key {destination.incident_key!r}")
    for identity in (USER_NAME, ACCESS_KEY, SESSION_KEY, ROLE_NAME):
        if identity in destination.incident_key:
            problems.append(f"{identity} in clear in the incident key {destination.incident_key}")
    return problems


# --- all 204 types ---


def test_the_catalogue_holds_the_204_current_types_once_each():
    types = [entry["type"] for entry in CATALOGUE]
    assert len(types) == 204
    assert len(set(types)) == 204
    assert all(":" in t and "/" in t for t in types)


def test_every_catalogue_type_routes_to_a_named_playbook_the_table_means_for_its_family():
    intended_counts: Counter[str] = Counter()
    routed_counts: Counter[str] = Counter()
    wrong = []
    for number, entry in enumerate(CATALOGUE):
        resource, expected = _as_guardduty_sends(entry)
        finding = _finding(entry["type"], resource, finding_id=f"catalogue{number:03d}")
        intended, why = router._intended(finding)
        destination = route(finding)
        intended_counts[intended] += 1
        routed_counts[destination.playbook] += 1
        problems = _check_route(destination, intended)
        if intended != expected:
            problems.append(f"the table means {intended} ({why}), expected {expected}")
        wrong += [f"{entry['type']} [{finding.resource.resource_type}]: {problem}" for problem in problems]
    print(f"\n{len(CATALOGUE)} catalogue types, meant for: {dict(sorted(intended_counts.items()))}")
    print(f"{len(CATALOGUE)} catalogue types, routed to: {dict(sorted(routed_counts.items()))}")
    assert wrong == [], "\n".join(wrong)
    assert sum(routed_counts.values()) == 204
    # Each playbook is meant for some family; those this version does not run hand their findings to triage.
    assert set(intended_counts) == set(ALL_PLAYBOOKS)
    assert set(routed_counts) == {_expected_playbook(p) for p in intended_counts}


@pytest.mark.parametrize(
    ("family", "intended", "resource"),
    [
        ("IAMUser", IAM_USER_PLAYBOOK, "AccessKey"),
        ("S3", S3_PLAYBOOK, "S3Bucket"),
        ("Lambda", LAMBDA_PLAYBOOK, "Lambda"),
        ("RDS", RDS_PLAYBOOK, "RDSDBInstance"),
        ("EC2", EC2_PLAYBOOK, "Instance"),
    ],
)
def test_each_family_reaches_its_playbook_or_triage_saying_it_is_not_in_this_version(family, intended, resource):
    routed = []
    for entry in CATALOGUE:
        if type_family(entry["type"]) != family or entry["type"].startswith("AttackSequence:"):
            continue
        built, expected = _as_guardduty_sends(entry)
        finding = _finding(entry["type"], built)
        if expected != intended or finding.resource.resource_type != resource:
            continue  # root credentials, role sessions, backups, management events: checked elsewhere
        destination = route(finding)
        assert router._intended(finding)[0] == intended, entry["type"]
        assert destination.playbook == _expected_playbook(intended), (entry["type"], destination)
        if intended in router.AVAILABLE_PLAYBOOKS:
            assert "not in this version" not in destination.reason, destination.reason
        else:
            assert f"the {intended} playbook is not in this version" in destination.reason, destination.reason
        routed.append(entry["type"])
    assert routed, f"no {family} type in the catalogue about a {resource}"


def test_runtime_types_on_a_cluster_or_a_container_go_to_triage_naming_what_they_are_about():
    runtime = [e["type"] for e in CATALOGUE if type_family(e["type"]) == "Runtime"]
    assert len(runtime) == 46
    variants = {
        "EKSCluster": {"resourceType": "EKSCluster", "eksClusterDetails": {"name": "prod-eks"}},
        "ECSCluster": {"resourceType": "ECSCluster", "ecsClusterDetails": {"name": "prod-ecs"}},
        "Container": {"resourceType": "Container", "containerDetails": {"id": "0123456789ab", "name": "api"}},
    }
    for finding_type in runtime:
        assert route(_finding(finding_type)).playbook == EC2_PLAYBOOK, finding_type
        for kind, resource in variants.items():
            destination = route(_finding(finding_type, resource))
            assert destination.playbook == TRIAGE_PLAYBOOK, (finding_type, kind)
            assert kind in destination.reason and "no instance" in destination.reason, destination.reason
            assert destination.incident_key.startswith(f"triage-{kind.lower()}-{ACCOUNT}-{REGION}-")


# --- types nobody has seen yet ---

_INSTANCE = None  # the sample's EC2 instance
_NEW_TYPES = [
    ("NewTactic:EC2/SomethingNew", _INSTANCE, EC2_PLAYBOOK),
    ("NewTactic:Quantum/SomethingNew", _INSTANCE, EC2_PLAYBOOK),  # an instance is an instance
    ("Entirely unlike a GuardDuty type", _INSTANCE, EC2_PLAYBOOK),
    ("NewTactic:Quantum/X", {"resourceType": "QuantumProcessor"}, TRIAGE_PLAYBOOK),
    ("NewTactic:EC2/SomethingNew", {"resourceType": "Ec2LaunchTemplate"}, TRIAGE_PLAYBOOK),
    ("NewTactic:S3/SomethingNew", {"resourceType": "S3Bucket", "s3BucketDetails": _buckets()}, S3_PLAYBOOK),
    (
        "NewTactic:IAMUser/SomethingNew",
        {"resourceType": "AccessKey", "accessKeyDetails": _access_key()},
        IAM_USER_PLAYBOOK,
    ),
    (
        "NewTactic:Lambda/SomethingNew",
        {"resourceType": "Lambda", "lambdaDetails": {"functionName": "f"}},
        LAMBDA_PLAYBOOK,
    ),
]


@pytest.mark.parametrize(
    ("finding_type", "resource", "intended"),
    _NEW_TYPES,
    ids=[f"{t}-on-{(r or {'resourceType': 'Instance'})['resourceType']}" for t, r, _ in _NEW_TYPES],
)
def test_a_type_the_table_has_never_seen_still_routes_by_its_resource(finding_type, resource, intended):
    finding = _finding(finding_type, resource)
    destination = route(finding)
    assert router._intended(finding)[0] == intended
    assert not _check_route(destination, intended)
    if intended == TRIAGE_PLAYBOOK:
        assert finding.resource.resource_type in destination.reason


# --- the public corpora ---


def _corpus_documents() -> list[tuple[str, Any]]:
    documents = []
    for number, line in enumerate(GUARDDUTY_CORPUS, start=1):
        documents += [
            (f"findings.jsonl:{number} {field}", line[field]) for field in ("event_eventbridge", "event_original")
        ]
    for number, line in enumerate(ASFF_CORPUS, start=1):
        documents.append((f"asff_findings.jsonl:{number}", line["finding"]))
        if isinstance(line.get("eventbridge_event"), dict):
            documents.append((f"asff_findings.jsonl:{number} eventbridge_event", line["eventbridge_event"]))
    return documents


def _identities(parsed: ParsedFinding) -> set[str]:
    """User names and access keys the finding names, from the normalised finding and the raw record."""
    resource = parsed.finding.resource
    names = {resource.user_name, resource.access_key_id}
    if resource.resource_type in ("AccessKey", "IAMUser", "IAMRole"):
        names.add(resource.resource_id)
    raw_resource = parsed.raw.get("detail", parsed.raw).get("resource") or parsed.raw.get("Resource") or {}
    details = raw_resource.get("accessKeyDetails") or raw_resource.get("AccessKeyDetails") or {}
    names |= {details.get("userName"), details.get("UserName"), details.get("accessKeyId"), details.get("AccessKeyId")}
    return {n for n in names if n and len(n) >= 6}


def test_every_corpus_finding_that_parses_routes_to_a_playbook_keeping_identities_out_of_its_key():
    routed: Counter[tuple[str, str]] = Counter()
    wrong = []
    for where, document in _corpus_documents():
        for result in unwrap(document):
            if isinstance(result, FindingRejected):
                continue  # parse rejections are test_router_corpus's business
            finding = result.finding
            try:
                destination = route(finding)
            except Exception as error:  # noqa: BLE001 (a crash is what this test looks for)
                wrong.append(f"{where}: {finding.type}: {type(error).__name__}: {error}")
                continue
            routed[(finding.source.value, destination.playbook)] += 1
            if destination.playbook not in router.AVAILABLE_PLAYBOOKS or not destination.reason:
                wrong.append(f"{where}: {finding.type} → {destination}")
            if not WORKFLOW_ID_CHARACTERS.fullmatch(destination.incident_key):
                wrong.append(f"{where}: unsafe key {destination.incident_key!r}")
            wrong += [
                f"{where}: {finding.type}: {name!r} in clear in {destination.incident_key}"
                for name in _identities(result)
                if name in destination.incident_key
            ]
    print(f"\ncorpus findings routed (source, playbook): {dict(sorted(routed.items()))}")
    assert wrong == [], "\n".join(wrong)
    assert routed[("guardduty", EC2_PLAYBOOK)] > 0 and routed[("securityhub", EC2_PLAYBOOK)] > 0
    assert routed[("guardduty", TRIAGE_PLAYBOOK)] > 0 and routed[("securityhub", TRIAGE_PLAYBOOK)] > 0


# --- overrides ---


def test_a_glob_override_wins_over_the_table():
    portscan = _finding("Recon:EC2/Portscan")
    overrides = {"Recon:EC2/*": TRIAGE_PLAYBOOK}
    destination = route(portscan, overrides)
    assert route(portscan).playbook == EC2_PLAYBOOK
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "Recon:EC2/*" in destination.reason
    # Still one incident per instance, under triage.
    assert destination.resource_id == INSTANCE_ID
    assert destination.incident_key == f"triage-instance-{ACCOUNT}-{REGION}-{INSTANCE_ID}"
    assert route(_finding("Backdoor:EC2/C&CActivity.B"), overrides).playbook == EC2_PLAYBOOK


@pytest.mark.parametrize(
    ("overrides", "playbook"),
    [
        ({"Recon:EC2/*": TRIAGE_PLAYBOOK, "Recon:*": EC2_PLAYBOOK, "*": TRIAGE_PLAYBOOK}, TRIAGE_PLAYBOOK),
        ({"Recon:*": EC2_PLAYBOOK, "Recon:EC2/*": TRIAGE_PLAYBOOK}, EC2_PLAYBOOK),
        ({"*Portscan": TRIAGE_PLAYBOOK, "*": EC2_PLAYBOOK}, TRIAGE_PLAYBOOK),
        ({"Backdoor:*": TRIAGE_PLAYBOOK, "*": EC2_PLAYBOOK}, EC2_PLAYBOOK),
    ],
    ids=["specific-first", "broad-first", "suffix-glob", "non-matching-first"],
)
def test_the_first_matching_override_wins(overrides, playbook):
    destination = route(_finding("Recon:EC2/Portscan"), overrides)
    assert destination.playbook == playbook
    first = next(pattern for pattern in overrides if fnmatchcase("Recon:EC2/Portscan", pattern))
    assert repr(first) in destination.reason


def test_an_override_to_a_playbook_not_in_this_version_goes_to_triage_saying_both(monkeypatch):
    # Every playbook ships in this version: a version without one (RDS, say) is simulated.
    if set(ALL_PLAYBOOKS) <= router.AVAILABLE_PLAYBOOKS:
        monkeypatch.setattr(router, "AVAILABLE_PLAYBOOKS", router.AVAILABLE_PLAYBOOKS - {RDS_PLAYBOOK})
    missing = [p for p in ALL_PLAYBOOKS if p not in router.AVAILABLE_PLAYBOOKS]
    destination = route(_finding("Recon:EC2/Portscan"), {"Recon:*": missing[0]})
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "Recon:*" in destination.reason and f"the {missing[0]} playbook is not in this version" in destination.reason


def test_an_override_to_the_bucket_playbook_needs_a_bucket():
    destination = route(_finding("Recon:EC2/Portscan"), {"Recon:*": S3_PLAYBOOK})
    assert destination.playbook == TRIAGE_PLAYBOOK and "no bucket" in destination.reason


def test_an_override_to_the_ec2_playbook_cannot_contain_what_is_not_an_instance():
    destination = route(_user_finding(), {"*": EC2_PLAYBOOK})
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "no instance id" in destination.reason
    assert USER_NAME not in destination.incident_key and ACCESS_KEY not in destination.incident_key


def test_an_override_naming_an_unknown_playbook_is_rejected_as_invalid_override():
    with pytest.raises(FindingRejected) as caught:
        route(_finding("Recon:EC2/Portscan"), {"Recon:EC2/*": "quarantine-everything"})
    assert caught.value.code == "invalid_override"
    assert "Recon:EC2/*" in caught.value.reason and "quarantine-everything" in caught.value.reason


@pytest.fixture
def clean_environment(monkeypatch):
    """IrflowSettings from nothing but what the test sets."""
    for name in [n for n in os.environ if n.startswith("IRFLOW_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_overrides_are_read_from_the_environment_in_their_order(clean_environment):
    assert IrflowSettings().playbook_overrides == {}
    overrides = {"Recon:EC2/*": TRIAGE_PLAYBOOK, "Recon:*": EC2_PLAYBOOK, "*:IAMUser/*": TRIAGE_PLAYBOOK}
    clean_environment.setenv("IRFLOW_PLAYBOOK_OVERRIDES", json.dumps(overrides))
    settings = IrflowSettings()
    assert list(settings.playbook_overrides.items()) == list(overrides.items())
    assert route(_finding("Recon:EC2/Portscan"), settings.playbook_overrides).playbook == TRIAGE_PLAYBOOK
    assert route(_finding("Backdoor:EC2/Spambot"), settings.playbook_overrides).playbook == EC2_PLAYBOOK
    assert "*:IAMUser/*" in route(_user_finding(), settings.playbook_overrides).reason


def test_an_unknown_playbook_in_the_environment_is_refused_when_routing(clean_environment):
    clean_environment.setenv("IRFLOW_PLAYBOOK_OVERRIDES", json.dumps({"*": "shutdown-everything"}))
    with pytest.raises(FindingRejected) as caught:
        route(_finding("Recon:EC2/Portscan"), IrflowSettings().playbook_overrides)
    assert caught.value.code == "invalid_override"


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


def test_each_attack_sequence_is_an_incident_of_its_own_in_triage():
    first = _finding("AttackSequence:IAM/CompromisedCredentials", {"resourceType": "AttackSequence"}, "seq0001")
    second = _finding("AttackSequence:IAM/CompromisedCredentials", {"resourceType": "AttackSequence"}, "seq0002")
    one, two = route(first), route(second)
    assert one.playbook == two.playbook == TRIAGE_PLAYBOOK
    assert "attack sequence" in one.reason
    assert one.incident_key != two.incident_key
    assert "seq0001" in one.incident_key and "seq0002" in two.incident_key
    assert route(first).incident_key == one.incident_key  # an update of the same sequence joins it
    assert WORKFLOW_ID_CHARACTERS.fullmatch(one.incident_key)


def test_the_attack_sequences_of_the_corpus_each_open_their_own_triage_incident():
    sequences = [
        parse_guardduty(line["event_eventbridge"]).finding
        for line in GUARDDUTY_CORPUS
        if line["event_eventbridge"]["detail"]["type"].startswith("AttackSequence:")
    ]
    assert len(sequences) == 2
    keys = {route(f).incident_key for f in sequences}
    assert len(keys) == 2
    assert {route(f).playbook for f in sequences} == {TRIAGE_PLAYBOOK}


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
