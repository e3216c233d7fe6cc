"""The EC2 incident, end to end through a real Temporal dev server, with moto as the account."""

from __future__ import annotations

import asyncio
import hashlib

import boto3
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from irflow.models.incident import Phase, Status
from tests.support import (
    incident_snapshots,
    observed_instance,
    only_forensic_egress,
    open_incident,
    quarantine_groups,
    running_worker,
    wait_for,
)
from tests.workflows.faults import flaky_after_acting
from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS
from workflows.incident import IncidentWorkflow


def _assert_contained(workload, incident_id: str) -> dict:
    contained = observed_instance(workload)
    quarantine = quarantine_groups(workload)
    assert len(quarantine) == 1, "one quarantine group per VPC"
    assert quarantine[0]["IpPermissions"] == [] and only_forensic_egress(quarantine[0]["IpPermissionsEgress"])
    assert len(contained["enis"]) == 2
    assert all(groups == [quarantine[0]["GroupId"]] for groups in contained["enis"].values())
    assert contained["asg_member"] == [] and contained["target_groups"] == []
    assert contained["termination_protection"] is True and contained["shutdown_behavior"] == "stop"
    quarantine_profile = boto3.client("iam").get_instance_profile(InstanceProfileName=workload.quarantine_profile)
    assert contained["profiles"] == [quarantine_profile["InstanceProfile"]["Arn"]], "only SSM and its memory folder"
    assert contained["role_policies"] == [f"irflow-revoke-sessions-{incident_id}"]
    assert contained["tags"]["irflow:incident-id"] == incident_id
    snapshots = incident_snapshots(workload, incident_id)
    volumes = boto3.client("ec2").describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
    )["Volumes"]
    assert sorted(s["VolumeId"] for s in snapshots) == sorted(v["VolumeId"] for v in volumes), "one per volume"
    return contained


def _assert_evidence_intact(state) -> None:
    s3 = boto3.client("s3")
    kinds = {e.kind for e in state.evidence}
    assert {"finding", "metadata", "console", "memory-acquisition", "manifest"} <= kinds
    for item in state.evidence:
        assert item.key.startswith(f"incidents/{state.incident_id}/")
        body = s3.get_object(Bucket=item.bucket, Key=item.key, VersionId=item.version_id)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == item.sha256, item.key
        head = s3.head_object(Bucket=item.bucket, Key=item.key, VersionId=item.version_id)
        assert head["ObjectLockMode"] == "COMPLIANCE" and head["ServerSideEncryption"] == "aws:kms"


async def test_contains_collects_evidence_and_stops_on_approval(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.phase == Phase.DECISION)
        _assert_contained(workload, submission.incident_id)
        _assert_evidence_intact(state)
        # moto runs no instance: the command is sent through the endpoints, and no image comes back (the report
        # says so; tests/workflows/test_ec2_playbook_memory.py plays the instance's part).
        assert state.memory_capture.mode == "through-endpoints" and state.memory_capture.command_id
        assert not state.memory_capture.captured and "stored no image" in state.memory_capture.reason
        assert state.pending_decision.kind == "eradication"
        await handle.signal("approve", {"by": "alice", "comment": "confirmed C2", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED and final.eradication == "stop"
    assert observed_instance(workload)["state"] == "stopped"
    assert [(d.by, d.kind, d.comment) for d in final.decisions] == [("alice", "approve", "confirmed C2")]
    assert final.metrics()["detected_to_contained_s"] is not None
    report_keys = set(final.report_keys)
    markdown_key = f"incidents/{final.incident_id}/report/report.md"
    assert {
        markdown_key,
        f"incidents/{final.incident_id}/report/report.json",
        f"incidents/{final.incident_id}/report/report.html",
    } == report_keys
    _assert_evidence_intact(final)
    markdown = boto3.client("s3").get_object(Bucket=workload.evidence_bucket, Key=markdown_key)["Body"].read()
    assert b"alice" in markdown and b"isolate_network" in markdown


async def test_terminate_when_the_approval_says_so_keeps_the_snapshots(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("approve", {"by": "alice", "eradication": "terminate"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    assert observed_instance(workload)["state"] == "terminated"
    assert len(incident_snapshots(workload, submission.incident_id)) == 2


async def test_low_severity_waits_for_approval_before_containing(dev_env, workload):
    before = observed_instance(workload)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload, severity=2.0)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "containment" and state.containment_requires_approval
        await asyncio.sleep(0.5)
        assert observed_instance(workload) == before, "nothing is touched before the analyst approves"
        await handle.signal("approve", {"by": "dave"})
        state = await wait_for(
            handle, lambda s: s.pending_decision is not None and s.pending_decision.kind == "eradication"
        )
        assert observed_instance(workload)["enis"] != before["enis"]
        await handle.signal("reject", {"by": "dave", "reason": "test traffic after all"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert observed_instance(workload) == before


async def test_invalid_and_untimely_decisions_are_refused_and_change_nothing(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload, severity=2.0)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("approve", {"comment": "who am I?"})
        await handle.signal("reject", {"by": "eve"})  # no reason
        state = await wait_for(handle, lambda s: len(s.decisions) == 2)
        assert [d.accepted for d in state.decisions] == [False, False]
        assert all("invalid request" in d.refusal for d in state.decisions), [d.refusal for d in state.decisions]
        assert state.status == Status.AWAITING_DECISION and state.pending_decision.kind == "containment"
        await handle.signal("reject", {"by": "eve", "reason": "known scanner"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK and final.compensations == []


async def test_search_attributes_let_analysts_filter_incidents(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        query = (
            f"WorkflowId = '{submission.workflow_id}' AND IrflowStatus = 'awaiting_decision' "
            f"AND IrflowPhase = 'analyst_decision' AND IrflowSeverity = 'HIGH' "
            f"AND IrflowResourceId = '{workload.instance_id}' AND IrflowFindingType = 'Backdoor:EC2/C&CActivity.B!DNS'"
        )
        found = []
        for _ in range(50):  # visibility is eventually consistent
            found = [w async for w in client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
        assert [w.id for w in found] == [submission.workflow_id]
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()


async def test_repeated_findings_join_the_running_incident(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        first, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        again, _ = await open_incident(client, settings, workload, severity=9.0, finding_id="f" * 32)
        assert again.joined and again.workflow_id == first.workflow_id and again.incident_id == first.incident_id
        state = await wait_for(handle, lambda s: len(s.findings_absorbed) == 2)
        assert state.severity == "CRITICAL"
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{first.workflow_id}'")]
        assert len(runs) == 1
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()


async def test_retried_steps_and_replay_change_nothing_twice(dev_env, workload):
    """Every containment step and the snapshots lose their first response: Temporal retries them."""
    client = dev_env.client
    flaky = [step.name for step in EC2_CONTAINMENT_STEPS] + ["snapshot_volumes"]
    async with running_worker(client, activities=flaky_after_acting(flaky)) as settings:
        submission, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=90)
        _assert_contained(workload, submission.incident_id)  # one group, one policy, one snapshot per volume
        assert len(state.snapshots) == 2
        await handle.signal("approve", {"by": "alice", "eradication": "stop"})
        await handle.result()
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(WorkflowHistory.from_json(submission.workflow_id, history.to_json()))
    assert len(incident_snapshots(workload, submission.incident_id)) == 2


async def test_a_finding_after_the_incident_ended_opens_a_new_incident_under_the_same_key(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        first, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "pentest"})
        await handle.result()
        await asyncio.sleep(1.1)  # incident ids carry the opening second
        second, second_handle = await open_incident(client, settings, workload, finding_id="a" * 32)
        assert not second.joined
        assert second.workflow_id == first.workflow_id and second.incident_id != first.incident_id
        state = await wait_for(second_handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.incident_id == second.incident_id and len(state.findings_absorbed) == 1
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{first.workflow_id}'")]
        assert len(runs) == 2, "a new run of the same workflow id"
        await second_handle.signal("reject", {"by": "bob", "reason": "pentest again"})
        await second_handle.result()
