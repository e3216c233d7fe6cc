"""The RDS playbook's postcondition checks, against moto, for a lone instance and an Aurora cluster: each holds once
its step ran, says what drifted when someone undoes it from outside, and holds again once the step is re-applied.
A deleted database is gone, not drift; the snapshot (evidence, no undo) has no check."""

from __future__ import annotations

import boto3
import pytest

from activities.postconditions import POSTCONDITIONS
from activities.postconditions_rds import check_disable_db_public_access, check_quarantine_db_security_groups
from tests.activities.rds_support import (
    _step,
    aurora_fixture,  # noqa: F401  (fixtures: pytest finds them in the module)
    database_fixture,  # noqa: F401
    rds_fidelity_fixture,  # noqa: F401
)
from tests.support import act
from workflows.rds_playbook import RDS_CONTAINMENT_STEPS, SNAPSHOT_STEP

STEPS = {s.name: s for s in RDS_CONTAINMENT_STEPS if s.undo}


def contain(db):
    step = _step(db)
    for containment in RDS_CONTAINMENT_STEPS:
        act(containment, step)
    return step


def rds(db):
    return boto3.client("rds", region_name=db.region)


def quarantine_group(step) -> str:
    return act(STEPS["quarantine_db_security_groups"], step).detail["quarantine_group"]


def test_the_snapshot_has_no_check_and_every_other_step_has_one():
    assert SNAPSHOT_STEP.name not in POSTCONDITIONS
    assert set(STEPS) <= set(POSTCONDITIONS)


@pytest.mark.parametrize("which", ["database", "aurora"])
def test_every_check_fails_before_containment_and_holds_after(request, which):
    db = request.getfixturevalue(which)
    step = _step(db)
    assert step.prior.publicly_accessible or any(m.publicly_accessible for m in step.prior.instances)
    for name, containment in STEPS.items():
        before = POSTCONDITIONS[name](containment.argument(step))
        assert (before.step, before.holds) == (name, False), name
        assert before.found and before.resources, name
    contain(db)
    for name, containment in STEPS.items():
        after = POSTCONDITIONS[name](containment.argument(step))
        assert (after.holds, after.gone) == (True, []), f"{name}: {after.found}"


def test_a_database_made_public_again_is_drift_until_made_private_again(database):
    step = contain(database)
    rds(database).modify_db_instance(
        DBInstanceIdentifier=database.db_instance_id, PubliclyAccessible=True, ApplyImmediately=True
    )
    result = check_disable_db_public_access(step)
    assert result.holds is False
    assert result.found.startswith(f"DB instance {database.db_instance_id} is publicly accessible")
    assert result.resources == [database.db_instance_id, step.prior.db_instance_arn]
    act(STEPS["disable_db_public_access"], step)
    assert check_disable_db_public_access(step).holds is True


def test_one_aurora_member_made_public_is_drift_naming_that_member(aurora):
    step = contain(aurora)
    member = step.prior.instances[-1].identifier
    rds(aurora).modify_db_instance(DBInstanceIdentifier=member, PubliclyAccessible=True, ApplyImmediately=True)
    result = check_disable_db_public_access(step)
    assert result.holds is False and result.resources[0] == member
    act(STEPS["disable_db_public_access"], step)
    assert check_disable_db_public_access(step).holds is True


@pytest.mark.parametrize("which", ["database", "aurora"])
def test_old_security_groups_put_back_are_drift_until_quarantined_again(request, which):
    db = request.getfixturevalue(which)
    step = contain(db)
    quarantine = quarantine_group(step)
    old = step.prior.security_groups
    if step.prior.cluster:
        name = step.prior.cluster.identifier
        rds(db).modify_db_cluster(DBClusterIdentifier=name, VpcSecurityGroupIds=old, ApplyImmediately=True)
        kind = "Aurora cluster"
    else:
        name = step.prior.db_instance_identifier
        rds(db).modify_db_instance(DBInstanceIdentifier=name, VpcSecurityGroupIds=old, ApplyImmediately=True)
        kind = "DB instance"
    result = check_quarantine_db_security_groups(step)
    assert result.holds is False
    assert result.found == (
        f"{kind} {name} has security groups {', '.join(sorted(old))}, not only the quarantine group {quarantine}"
    )
    assert result.resources == [name]
    act(STEPS["quarantine_db_security_groups"], step)
    assert check_quarantine_db_security_groups(step).holds is True


def test_a_loosened_quarantine_group_is_drift_for_the_database_too(database):
    step = contain(database)
    quarantine = quarantine_group(step)
    rule = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    boto3.client("ec2", region_name=database.region).authorize_security_group_ingress(
        GroupId=quarantine, IpPermissions=[rule]
    )
    result = check_quarantine_db_security_groups(step)
    assert result.holds is False
    assert f"quarantine group {quarantine} allows in tcp 5432 from 0.0.0.0/0" in result.found
    assert result.resources == [quarantine]
    act(STEPS["quarantine_db_security_groups"], step)
    assert check_quarantine_db_security_groups(step).holds is True


def test_a_deleted_database_is_gone_not_drift(database):
    step = contain(database)
    rds(database).delete_db_instance(DBInstanceIdentifier=database.db_instance_id, SkipFinalSnapshot=True)
    for name, containment in STEPS.items():
        result = POSTCONDITIONS[name](containment.argument(step))
        assert (result.holds, result.gone) == (True, [database.db_instance_id]), name
        assert "no longer exists" in result.found
