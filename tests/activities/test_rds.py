"""The RDS activities against in-process moto: each step twice is once, each undo restores exactly, the
snapshot is made once and stays, Aurora is contained as a cluster, busy instances are waited for."""

from __future__ import annotations

import hashlib
import json
import re

import boto3
import pytest
from moto.rds.exceptions import InvalidDBInstanceStateError
from moto.rds.models import RDSBackend
from temporalio.exceptions import ApplicationError

import activities.rds as rds_activities
from irflow.devstack import moto_fidelity_rds
from irflow.devstack.demo import sample_finding
from irflow.devstack.demo_rds import sample_rds_finding, seed_aurora_cluster, seed_rds_instance
from irflow.intake.router import RDS_PLAYBOOK, TRIAGE_PLAYBOOK, route
from irflow.models.asff import parse_asff
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.finding import parse_guardduty
from irflow.models.rds import DbStepInput, DbTarget, db_instance_name, snapshot_identifier
from tests.support import CORPORA
from workflows.rds_playbook import RDS_CONTAINMENT_STEPS

INCIDENT_ID = "rds-123456789012-us-east-1-demo-orders-db-20250314T092653Z"
STEPS = [s.name for s in RDS_CONTAINMENT_STEPS]
UNDOS = [s.undo_name for s in reversed(RDS_CONTAINMENT_STEPS) if s.undo]


def run(name: str, argument):
    """Run an activity by name; a containment step or its undo gets the argument the playbook makes for it
    from the step input (the incident tags take a tag request)."""
    for containment in RDS_CONTAINMENT_STEPS:
        if name == containment.name:
            return containment.activity(containment.argument(argument))
        if name == containment.undo_name:
            return containment.undo(containment.argument(argument))
    return getattr(rds_activities, name)(argument)


def observed_db(region: str, identifier: str, cluster: str | None = None) -> dict:
    """What a responder would check, read straight from (moto's) RDS."""
    rds = boto3.client("rds", region_name=region)

    def instance(name: str) -> dict:
        record = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
        return {
            "public": record["PubliclyAccessible"],
            "groups": [g["VpcSecurityGroupId"] for g in record["VpcSecurityGroups"]],
            "parameter_groups": [g["DBParameterGroupName"] for g in record["DBParameterGroups"]],
            "tags": {t["Key"]: t["Value"] for t in record.get("TagList", [])},
            "status": record["DBInstanceStatus"],
        }

    if cluster is None:
        return instance(identifier)
    record = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
    return {
        "groups": [g["VpcSecurityGroupId"] for g in record["VpcSecurityGroups"]],
        "tags": {t["Key"]: t["Value"] for t in record.get("TagList", [])},
        "members": {m["DBInstanceIdentifier"]: instance(m["DBInstanceIdentifier"]) for m in record["DBClusterMembers"]},
    }


def incident_db_snapshots(region: str) -> list[dict]:
    rds = boto3.client("rds", region_name=region)
    instance = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    cluster = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    return [
        s for s in instance + cluster if {"Key": "irflow:incident-id", "Value": INCIDENT_ID} in s.get("TagList", [])
    ]


@pytest.fixture(autouse=True)
def rds_fidelity():
    moto_fidelity_rds.apply()


@pytest.fixture
def database(workload):
    return seed_rds_instance(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)


@pytest.fixture
def aurora(workload):
    return seed_aurora_cluster(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)


def _step(db, user: dict | None = None) -> DbStepInput:
    target = DbTarget(
        incident_id=INCIDENT_ID,
        account_id=db.account_id,
        region=db.region,
        db_instance_identifier=db.db_instance_id,
        db_user=user or {},
    )
    return DbStepInput(target=target, prior=run("describe_db_instance_context", target))


def test_the_context_records_what_containment_changes(database):
    prior = _step(database).prior
    assert prior.publicly_accessible is True
    assert prior.vpc_security_group_ids == database.security_group_ids
    assert prior.security_groups == database.security_group_ids
    assert prior.vpc_id == database.vpc_id
    assert prior.db_subnet_group == database.subnet_group
    assert prior.parameter_groups == [database.parameter_group]
    assert prior.tags == {"app": "shop", "data": "orders"}
    assert prior.iam_database_authentication and prior.monitoring_interval == 60
    assert prior.log_exports == ["postgresql"]
    assert prior.endpoint_address and prior.endpoint_port == 5432
    assert prior.cluster is None
    assert [(m.identifier, m.publicly_accessible) for m in prior.instances] == [(database.db_instance_id, True)]


def test_each_step_twice_is_once_and_the_undos_restore_exactly(workload, database):
    before = observed_db(database.region, database.db_instance_id)
    step = _step(database)
    first = [run(name, step) for name in STEPS]
    assert all(result.changed for result in first)
    contained = observed_db(database.region, database.db_instance_id)
    assert contained["public"] is False
    quarantine = first[2].detail["quarantine_group"]
    assert contained["groups"] == [quarantine]
    assert contained["tags"] == {**before["tags"], "irflow:incident-id": INCIDENT_ID, "irflow:status": "contained"}
    assert contained["parameter_groups"] == before["parameter_groups"]
    ec2 = boto3.client("ec2", region_name=workload.region)
    group = ec2.describe_security_groups(GroupIds=[quarantine])["SecurityGroups"][0]
    assert group["VpcId"] == database.vpc_id
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []

    second = [run(name, step) for name in STEPS]
    assert [r.changed for r in second] == [False] * len(STEPS)
    assert observed_db(database.region, database.db_instance_id) == contained
    snapshots = incident_db_snapshots(database.region)
    assert [s["DBSnapshotIdentifier"] for s in snapshots] == [snapshot_identifier(INCIDENT_ID)]
    assert snapshots[0]["DBInstanceIdentifier"] == database.db_instance_id
    assert first[3].detail["snapshot_id"] == second[3].detail["snapshot_id"] == snapshots[0]["DBSnapshotIdentifier"]
    assert first[3].detail["snapshot_arn"] == snapshots[0]["DBSnapshotArn"]

    for name in UNDOS + UNDOS:
        run(name, step)
    assert observed_db(database.region, database.db_instance_id) == before
    assert len(incident_db_snapshots(database.region)) == 1, "the snapshot is evidence: it stays"


def test_a_tag_of_ours_that_was_there_before_gets_its_old_value_back(database):
    rds = boto3.client("rds", region_name=database.region)
    rds.add_tags_to_resource(
        ResourceName=database.db_instance_arn, Tags=[{"Key": "irflow:incident-id", "Value": "an-earlier-incident"}]
    )
    before = observed_db(database.region, database.db_instance_id)
    step = _step(database)
    run("tag_resource", step)
    assert observed_db(database.region, database.db_instance_id)["tags"]["irflow:incident-id"] == INCIDENT_ID
    run("restore_resource_tags", step)
    assert observed_db(database.region, database.db_instance_id) == before


def test_aurora_is_contained_as_a_cluster(workload, aurora):
    before = observed_db(aurora.region, aurora.db_instance_id, aurora.cluster_id)
    step = _step(aurora)
    assert step.prior.cluster.identifier == aurora.cluster_id
    assert step.prior.security_groups == aurora.security_group_ids
    assert sorted(m.identifier for m in step.prior.instances) == sorted(aurora.member_ids)
    results = [run(name, step) for name in STEPS]
    contained = observed_db(aurora.region, aurora.db_instance_id, aurora.cluster_id)
    quarantine = results[2].detail["quarantine_group"]
    assert contained["groups"] == [quarantine]
    assert contained["tags"]["irflow:incident-id"] == INCIDENT_ID
    for member in aurora.member_ids:
        assert contained["members"][member]["public"] is False
        assert contained["members"][member]["tags"]["irflow:incident-id"] == INCIDENT_ID
    assert results[3].detail["kind"] == "db-cluster-snapshot"
    snapshots = incident_db_snapshots(aurora.region)
    assert [(s["DBClusterSnapshotIdentifier"], s["DBClusterIdentifier"]) for s in snapshots] == [
        (snapshot_identifier(INCIDENT_ID), aurora.cluster_id)
    ]
    assert [r.changed for r in (run(name, step) for name in STEPS)] == [False] * len(STEPS)
    for name in UNDOS + UNDOS:
        run(name, step)
    assert observed_db(aurora.region, aurora.db_instance_id, aurora.cluster_id) == before
    assert len(incident_db_snapshots(aurora.region)) == 1


def test_a_member_deleted_meanwhile_is_skipped_not_fatal(aurora):
    step = _step(aurora)
    boto3.client("rds", region_name=aurora.region).delete_db_instance(
        DBInstanceIdentifier=aurora.member_ids[1], SkipFinalSnapshot=True
    )
    assert run("tag_resource", step).detail["gone"] == [aurora.member_ids[1]]
    assert run("restore_resource_tags", step).detail["gone"] == [aurora.member_ids[1]]
    result = run("disable_db_public_access", step)
    assert result.detail["gone"] == [aurora.member_ids[1]]
    assert result.detail["publicly_accessible"] == {aurora.member_ids[0]: False}
    assert run("restore_db_public_access", step).detail["gone"] == [aurora.member_ids[1]]


def test_evidence_holds_configuration_rules_parameters_snapshot_and_user(workload, database):
    user = {"user": "orders_app", "database": "orders"}
    step = _step(database, user)
    for name in STEPS:
        run(name, step)
    evidence = run("collect_db_instance_evidence", step)
    raw = (
        boto3.client("s3")
        .get_object(Bucket=evidence.bucket, Key=evidence.key, VersionId=evidence.version_id)["Body"]
        .read()
    )
    assert hashlib.sha256(raw).hexdigest() == evidence.sha256
    document = json.loads(raw)
    assert document["database_user"] == user
    assert document["db_instance"]["DBInstanceIdentifier"] == database.db_instance_id
    assert document["prior"]["publicly_accessible"] is True
    assert document["prior"]["vpc_security_group_ids"] == database.security_group_ids
    parameters = document["parameter_groups"][database.parameter_group]["user_parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in parameters} == {
        "log_connections": "1",
        "rds.force_ssl": "0",
    }
    rules = {g["GroupId"]: g["IpPermissions"] for g in document["security_groups"]}
    assert sorted(rules) == sorted(database.security_group_ids)
    assert any(r["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}] for perms in rules.values() for r in perms)
    assert document["snapshot"]["snapshot_id"] == snapshot_identifier(INCIDENT_ID)
    assert document["snapshot"]["snapshot_arn"].endswith(f":snapshot:{snapshot_identifier(INCIDENT_ID)}")


def test_stop_is_idempotent(database):
    step = _step(database)
    assert run("stop_db_instance", step).detail["status"] == "stopped"
    again = run("stop_db_instance", step)
    assert (again.changed, again.detail["status"]) == (False, "stopped")


def test_a_missing_instance_is_not_found_and_no_name_is_refused(database):
    step = _step(database)
    gone = step.target.model_copy(update={"db_instance_identifier": "no-such-db"})
    with pytest.raises(ApplicationError) as raised:
        run("describe_db_instance_context", gone)
    assert raised.value.type == NOT_FOUND
    nameless = step.target.model_copy(update={"db_instance_identifier": ""})
    with pytest.raises(ApplicationError) as raised:
        run("describe_db_instance_context", nameless)
    assert raised.value.type == INVALID_REQUEST


def test_a_busy_instance_is_waited_for(database, monkeypatch):
    """RDS refuses a change while the instance is busy: the step waits and tries again."""
    step = _step(database)
    monkeypatch.setattr(rds_activities, "POLL_SECONDS", 0.0)
    original, refusals = RDSBackend.modify_db_instance, []

    def busy_once(self, *args, **kwargs):
        if not refusals:
            refusals.append(1)
            raise InvalidDBInstanceStateError(database.db_instance_id, "modify")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RDSBackend, "modify_db_instance", busy_once)
    assert run("disable_db_public_access", step).changed
    assert refusals and observed_db(database.region, database.db_instance_id)["public"] is False


def test_a_refusal_for_good_fails_the_step_typed(database, monkeypatch):
    step = _step(database)
    monkeypatch.setattr(rds_activities, "POLL_SECONDS", 0.0)

    def refuse(self, *args, **kwargs):
        raise InvalidDBInstanceStateError(database.db_instance_id, "stop")

    monkeypatch.setattr(RDSBackend, "stop_db_instance", refuse)
    with pytest.raises(ApplicationError) as raised:
        run("stop_db_instance", step)
    assert raised.value.type == INVALID_REQUEST and raised.value.non_retryable


@pytest.mark.parametrize(
    "incident_id",
    [
        INCIDENT_ID,
        "rds-123456789012-us-east-1-finding-" + "f" * 40 + "-20250314T092653Z",
        "rds-123456789012-us-east-1-a_b.c--d-20250314T092653Z",
        "x" * 400,
    ],
)
def test_snapshot_names_are_valid_rds_identifiers_and_deterministic(incident_id):
    name = snapshot_identifier(incident_id)
    assert name == snapshot_identifier(incident_id)
    assert len(name) <= 255
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name) and "--" not in name
    assert snapshot_identifier(incident_id + "x") != name


def _pascal(value):
    """A record as boto3's GetFindings returns it (PascalCase keys)."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def test_the_finding_names_instance_cluster_and_user_in_every_shape(workload):
    event = sample_rds_finding("orders-db", workload.account_id, workload.region, cluster_id="orders-cluster")
    expected = ("orders-cluster", {"user": "orders_app", "database": "orders", "application": "psql"})
    resource = parse_guardduty(event).finding.resource
    assert resource.db_cluster_id == expected[0] and expected[1].items() <= resource.db_user.items()
    assert parse_guardduty(event["detail"]).finding.resource.db_cluster_id == "orders-cluster"
    detail = {**event["detail"], "resource": {**event["detail"]["resource"], "rdsDbUserDetails": {"user": "u"}}}
    pascal = parse_guardduty(_pascal(detail)).finding.resource
    assert (pascal.db_cluster_id, pascal.db_user) == ("orders-cluster", {"user": "u"})
    asff = {
        "SchemaVersion": "2018-10-08",
        "Id": "arn:aws:securityhub:us-east-1:123456789012:finding/rds-1",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "AwsAccountId": "123456789012",
        "Types": ["TTPs/Credential Access/CredentialAccess:RDS-MaliciousIPCaller.SuccessfulLogin"],
        "CreatedAt": "2025-03-14T09:00:00Z",
        "UpdatedAt": "2025-03-14T09:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "Login from a known malicious address",
        "Region": "us-east-1",
        "Resources": [
            {
                "Type": "AwsRdsDbInstance",
                "Id": "arn:aws:rds:us-east-1:123456789012:db:orders-db",
                "Details": {"AwsRdsDbInstance": {"DbClusterIdentifier": "c"}},
            }
        ],
    }
    hub = parse_asff(asff).finding.resource
    assert (hub.db_cluster_id, hub.db_user) == ("c", {})
    plain = parse_guardduty(sample_finding("i-0123456789abcdef0")).finding.resource
    assert (plain.db_cluster_id, plain.db_user) == (None, {})
    assert db_instance_name("arn:aws:rds:us-east-1:123456789012:db:orders-db") == "orders-db"
    assert db_instance_name("orders-db") == "orders-db"


def test_rds_findings_route_to_the_rds_playbook_and_the_unnamed_to_triage(workload):
    parsed = parse_guardduty(sample_rds_finding("orders-db", workload.account_id, workload.region))
    assert (parsed.finding.resource.resource_type, parsed.finding.resource.resource_id) == (
        "RDSDBInstance",
        "orders-db",
    )
    assert route(parsed.finding).playbook == RDS_PLAYBOOK
    records = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").read_text().splitlines()]
    for record in (r for r in records if r.get("resource_type") == "RDSDBInstance"):
        finding = parse_guardduty(record["event_eventbridge"]).finding
        expected = RDS_PLAYBOOK if finding.resource.resource_id else TRIAGE_PLAYBOOK
        assert route(finding).playbook == expected, record["type"]
    limitless = sample_rds_finding("orders-db", workload.account_id, workload.region)
    limitless["detail"]["resource"] = {
        "resourceType": "RDSLimitlessDB",
        "rdsLimitlessDbDetails": {"dbShardGroupIdentifier": "s"},
    }
    assert route(parse_guardduty(limitless).finding).playbook == TRIAGE_PLAYBOOK
