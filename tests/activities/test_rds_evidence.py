"""RDS evidence against in-process moto: the configuration before and after containment, the security
groups' rules, the parameters set in custom groups, the incident's snapshot and the database user."""

from __future__ import annotations

import hashlib
import json

import boto3

from irflow.models.rds import snapshot_identifier
from tests.activities.rds_support import (
    INCIDENT_ID,
    STEPS,
    _step,
    database_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    rds_fidelity_fixture,  # noqa: F401
    run,
)


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
