"""A login to an RDS database from a known-bad address: the instance is made private, its security groups
are replaced by the quarantine group and it is snapshotted (evidence, kept whatever happens); rejection
(or a failure at any step) restores the instance exactly; approval keeps it contained and stops it."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from irflow.devstack import moto_fidelity_rds
from irflow.devstack.demo_rds import sample_rds_finding, seed_aurora_cluster, seed_rds_instance
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Eradication, Status
from irflow.models.rds import snapshot_identifier
from tests.activities.rds_support import observed_db
from tests.support import only_forensic_egress, read_evidence, running_worker, wait_for
from tests.workflows.faults import failing_after_acting, flaky_after_acting
from workflows.incident import IncidentWorkflow
from workflows.rds_playbook import RDS_CONTAINMENT_STEPS

STEPS = [step.name for step in RDS_CONTAINMENT_STEPS]


@pytest.fixture(autouse=True)
def rds_fidelity():
    moto_fidelity_rds.apply()


def _name() -> str:
    # Each test its own database, so an incident left open by a failed test never absorbs the next one.
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def database(workload):
    return seed_rds_instance(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids, _name())


@pytest.fixture
def aurora(workload):
    return seed_aurora_cluster(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids, _name())


def db_snapshots(region: str, incident_id: str) -> list[dict]:
    rds = boto3.client("rds", region_name=region)
    found = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    found += rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    return [s for s in found if {"Key": "irflow:incident-id", "Value": incident_id} in s.get("TagList", [])]


def quarantine_group(workload) -> str:
    ec2 = boto3.client("ec2", region_name=workload.region)
    groups = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [workload.vpc_id]},
            {"Name": "tag:irflow:role", "Values": ["quarantine"]},
        ]
    )["SecurityGroups"]
    assert len(groups) == 1
    assert groups[0]["IpPermissions"] == [] and only_forensic_egress(groups[0]["IpPermissionsEgress"])
    return groups[0]["GroupId"]


async def _open(client, settings, db):
    event = sample_rds_finding(db.db_instance_id, db.account_id, db.region, cluster_id=db.cluster_id)
    submission = await submit(client, parse_guardduty(event), settings)
    assert submission.workflow_id.startswith("rds-")
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def test_the_database_is_made_private_quarantined_snapshotted_and_stopped_on_approval(
    dev_env, workload, database
):
    before = observed_db(database.region, database.db_instance_id)
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, database)
        incident = submission.incident_id
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        contained = observed_db(database.region, database.db_instance_id)
        assert contained["public"] is False
        assert contained["groups"] == [quarantine_group(workload)]
        assert contained["tags"] == {**before["tags"], "irflow:incident-id": incident, "irflow:status": "contained"}
        assert contained["parameter_groups"] == before["parameter_groups"]

        snapshots = db_snapshots(database.region, incident)
        assert [(s["DBSnapshotIdentifier"], s["DBInstanceIdentifier"]) for s in snapshots] == [
            (snapshot_identifier(incident), database.db_instance_id)
        ]
        assert [(s.snapshot_id, s.volume_id) for s in state.snapshots] == [
            (snapshot_identifier(incident), database.db_instance_id)
        ]
        assert state.resource_context["vpc_security_group_ids"] == database.security_group_ids
        assert state.resource_context["parameter_groups"] == [database.parameter_group]
        assert any("database user orders_app" in reason for reason in state.plan_reasons)

        evidence = next(e for e in state.evidence if e.kind == "rds-instance")
        raw = read_evidence(evidence)
        document = json.loads(raw)
        assert document["database_user"]["user"] == "orders_app"
        assert document["prior"]["publicly_accessible"] is True
        assert document["snapshot"]["snapshot_id"] == snapshot_identifier(incident)
        assert "log_connections" in json.dumps(document["parameter_groups"])
        manifest = next(e for e in reversed(state.evidence) if e.kind == "manifest")
        listed = json.loads(
            boto3.client("s3")
            .get_object(Bucket=manifest.bucket, Key=manifest.key, VersionId=manifest.version_id)["Body"]
            .read()
        )
        assert [s["snapshot_id"] for s in listed["snapshots"]] == [snapshot_identifier(incident)]

        await handle.signal("approve", {"by": "alice", "comment": "login from a known-bad address"})
        final = await handle.result()
    assert final.status == Status.RESOLVED and final.eradication == Eradication.STOP
    after = observed_db(database.region, database.db_instance_id)
    assert after["status"] == "stopped"
    assert after["public"] is False and after["groups"] == contained["groups"]
    assert len(db_snapshots(database.region, incident)) == 1
    events = " ".join(t.event for t in final.timeline)
    assert "open sessions ended" in events and "rotate" in events and "orders_app" in events


async def test_rejection_restores_the_database_exactly_and_the_snapshot_stays(dev_env, workload, database):
    before = observed_db(database.region, database.db_instance_id)
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, database)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "the vendor's new office address"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert observed_db(database.region, database.db_instance_id) == before
    assert len(db_snapshots(database.region, submission.incident_id)) == 1
    assert [c.name for c in final.compensations] == [s.undo_name for s in reversed(RDS_CONTAINMENT_STEPS) if s.undo]


@pytest.mark.parametrize("failing_step", STEPS)
async def test_a_failure_at_any_step_restores_the_database_exactly(dev_env, workload, database, failing_step):
    before = observed_db(database.region, database.db_instance_id)
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting(failing_step)) as settings:
        submission, handle = await _open(client, settings, database)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    assert state.status == Status.ROLLED_BACK
    assert observed_db(database.region, database.db_instance_id) == before
    # The snapshot is evidence: when its step acted before failing, it is still there.
    expected = 1 if failing_step == "snapshot_db_instance" else 0
    assert len(db_snapshots(database.region, submission.incident_id)) == expected


async def test_retried_steps_change_nothing_twice(dev_env, workload, database):
    client = dev_env.client
    async with running_worker(client, activities=flaky_after_acting(STEPS)) as settings:
        submission, handle = await _open(client, settings, database)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        assert len(db_snapshots(database.region, submission.incident_id)) == 1, "one snapshot, not two"
        assert len(state.snapshots) == 1
        observed = observed_db(database.region, database.db_instance_id)
        assert observed["public"] is False and observed["groups"] == [quarantine_group(workload)]
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()


async def test_an_aurora_cluster_is_contained_as_a_whole_and_restored_exactly(dev_env, workload, aurora):
    before = observed_db(aurora.region, aurora.db_instance_id, aurora.cluster_id)
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, aurora)
        incident = submission.incident_id
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        contained = observed_db(aurora.region, aurora.db_instance_id, aurora.cluster_id)
        assert contained["groups"] == [quarantine_group(workload)]
        assert contained["tags"]["irflow:incident-id"] == incident
        assert {m: v["public"] for m, v in contained["members"].items()} == dict.fromkeys(aurora.member_ids, False)
        snapshots = db_snapshots(aurora.region, incident)
        assert [(s["DBClusterSnapshotIdentifier"], s["DBClusterIdentifier"]) for s in snapshots] == [
            (snapshot_identifier(incident), aurora.cluster_id)
        ]
        assert [s.volume_id for s in state.snapshots] == [aurora.cluster_id]
        assert any(f"Aurora cluster {aurora.cluster_id}" in reason for reason in state.plan_reasons)
        await handle.signal("reject", {"by": "bob", "reason": "a load test from the new office"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    assert observed_db(aurora.region, aurora.db_instance_id, aurora.cluster_id) == before
    assert len(db_snapshots(aurora.region, incident)) == 1
