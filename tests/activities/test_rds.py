"""The RDS activities against in-process moto: each step twice is once, each undo restores exactly, the
snapshot is made once and stays, Aurora is contained as a cluster, busy instances are waited for (the
configuration evidence has its own test file)."""

from __future__ import annotations

import boto3
import pytest
from moto.rds.exceptions import InvalidDBInstanceStateError
from moto.rds.models import RDSBackend
from temporalio.exceptions import ApplicationError

import activities.rds as rds_activities
from irflow.models.errors import INVALID_REQUEST, NOT_FOUND
from irflow.models.rds import snapshot_identifier
from tests.activities.rds_support import (
    INCIDENT_ID,
    STEPS,
    UNDOS,
    _step,
    aurora_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    database_fixture,  # noqa: F401
    incident_db_snapshots,
    observed_db,
    rds_fidelity_fixture,  # noqa: F401
    run,
)
from tests.support import only_forensic_egress


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
    assert group["IpPermissions"] == [] and only_forensic_egress(group["IpPermissionsEgress"])

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
