"""The routing table: every GuardDuty finding type, today's and tomorrow's, reaches a named playbook.

The table routes on the resource a finding names and on its type family, never on a list of type
names. So each of the 204 types in the public catalogue is built here as GuardDuty would send it (the
resource the catalogue says it is about), and must end at a playbook; what the table *means* for it
(before availability) is checked per family. A finding meant for a playbook this version does not run
goes to triage, saying so: the tests read `router.AVAILABLE_PLAYBOOKS`, so they hold as playbooks ship.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import irflow.intake.router as router
from irflow.intake.envelopes import unwrap
from irflow.intake.router import (
    ALL_PLAYBOOKS,
    EC2_PLAYBOOK,
    IAM_ROLE_PLAYBOOK,
    IAM_USER_PLAYBOOK,
    LAMBDA_PLAYBOOK,
    RDS_PLAYBOOK,
    S3_PLAYBOOK,
    SEQUENCE_PLAYBOOK,
    TRIAGE_PLAYBOOK,
    Route,
    route,
    type_family,
)
from irflow.models.finding import FindingRejected, ParsedFinding
from tests.irflow.intake.router_support import (
    ACCESS_KEY,
    ACCOUNT,
    BUCKET,
    GUARDDUTY_CORPUS,
    INSTANCE_ID,
    REGION,
    ROLE_NAME,
    SESSION_KEY,
    USER_NAME,
    WORKFLOW_ID_CHARACTERS,
    _access_key,
    _buckets,
    _expected_playbook,
    _finding,
)
from tests.support import CORPORA

CATALOGUE: list[dict[str, Any]] = json.loads((CORPORA / "guardduty" / "finding_types_catalogue.json").read_text())[
    "findings"
]
ASFF_CORPUS = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]


def _as_guardduty_sends(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the resource GuardDuty puts in a finding of this catalogue type, the playbook the table should
    mean for it). None keeps the sample's EC2 instance."""
    finding_type, about, source = entry["type"], entry["resource_type"], entry["source"]
    family = type_family(finding_type)
    if finding_type.startswith("AttackSequence:"):
        return {"resourceType": "AttackSequence"}, SEQUENCE_PLAYBOOK
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
