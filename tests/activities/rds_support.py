"""What the RDS activity tests share (and the RDS playbook's tests): a database seeded in moto, alone or
as an Aurora cluster, with moto's RDS made faithful enough; the step input; running an activity by name;
and what a responder would check of the database.

The fixtures are defined under other names and registered under the names the tests ask for, so a test
module imports them without its test arguments shadowing the import; `_step` keeps the leading
underscore it had in test_rds.py, so the tests that moved read as before.
"""

from __future__ import annotations

import boto3
import pytest

from activities.aws import registered_activities  # the package, imported first, registers every activity
from irflow.devstack import moto_fidelity_rds
from irflow.devstack.demo_rds import seed_aurora_cluster, seed_rds_instance
from irflow.models.rds import DbStepInput, DbTarget
from tests.support import act, undo
from workflows.rds_playbook import RDS_CONTAINMENT_STEPS

INCIDENT_ID = "rds-123456789012-us-east-1-demo-orders-db-20250314T092653Z"
STEPS = [s.name for s in RDS_CONTAINMENT_STEPS]
UNDOS = [s.undo_name for s in reversed(RDS_CONTAINMENT_STEPS) if s.undo]


def run(name: str, argument):
    """Run an activity by the name Temporal knows it by; a containment step or its undo gets the argument the
    playbook makes for it from the step input (the incident tags take a tag request)."""
    for containment in RDS_CONTAINMENT_STEPS:
        if name == containment.name:
            return act(containment, argument)
        if name == containment.undo_name:
            return undo(containment, argument)
    return registered_activities()[name][0](argument)


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


@pytest.fixture(name="rds_fidelity", autouse=True)
def rds_fidelity_fixture():
    moto_fidelity_rds.apply()


@pytest.fixture(name="database")
def database_fixture(workload):
    return seed_rds_instance(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids)


@pytest.fixture(name="aurora")
def aurora_fixture(workload):
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
