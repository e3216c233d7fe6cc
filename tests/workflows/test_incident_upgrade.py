"""Upgrading with incidents running (docs/operations.md, "Upgrading with incidents running"): each step this version
added to the incident's history is gated by `workflow.patched`, so an incident that ran before the step existed
replays on the new code as it ran, and a new incident records a marker where it took the step.

What this proves, and what not: the history of the first incident is recorded by this code with every gate closed
(`workflow.patched` answering False, as it does for a history recorded before the step existed): it holds none of
the gated steps, replays on this code, and would not replay if a gate were missing (forced open, the replay fails on
the first gated step). It is not a history recorded by the previous release: a change outside the gates that alters
the commands (rather than their inputs) would not be caught here.
"""

from __future__ import annotations

import json

import boto3
import pytest
import temporalio.workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.notify import forget_aliases
from irflow.devstack import moto_fidelity_findings
from irflow.devstack.demo import sample_finding
from irflow.intake.submit import submit
from irflow.models.asff import parse_asff
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from tests.activities.test_source_findings import asff_record
from tests.support import running_worker, wait_for
from workflows.activity_options import PRIOR_STATE_SETTLED
from workflows.incident import (
    BEFORE_REPORT,
    CLOSE_THE_LOOP,
    JOINED_FINDING,
    NOTIFY_CONTAINED,
    IncidentWorkflow,
)

PATCH_MARKER = "core_patch"  # the marker Temporal records for `workflow.patched`


@pytest.fixture
def security_hub(workload) -> str:
    """Security Hub on in the demo account, moto answering BatchUpdateFindings; the detector GuardDuty reports by."""
    moto_fidelity_findings.apply()
    forget_aliases()
    boto3.client("securityhub", region_name=workload.region).enable_security_hub()
    return boto3.client("guardduty", region_name=workload.region).create_detector(Enable=True)["DetectorId"]


def _imported(workload, detector: str, finding_id: str):
    """A GuardDuty finding about the demo instance as Security Hub holds it: told NOTIFIED, then the verdict."""
    instance = {
        "Type": "AwsEc2Instance",
        "Id": f"arn:aws:ec2:{workload.region}:{workload.account_id}:instance/{workload.instance_id}",
        "Partition": "aws",
        "Region": workload.region,
    }
    record = asff_record(
        f"arn:aws:guardduty:{workload.region}:{workload.account_id}:detector/{detector}/finding/{finding_id}",
        product_arn=f"arn:aws:securityhub:{workload.region}::product/aws/guardduty",
        resource=instance,
        account=workload.account_id,
        region=workload.region,
        product_name="GuardDuty",
    )
    boto3.client("securityhub", region_name=workload.region).batch_import_findings(Findings=[record])
    return parse_asff(record)


async def _incident_history(client, settings, workload, detector: str, finding_id: str) -> WorkflowHistory:
    """An incident run from start to end: contained, joined by a second finding while it waits, approved."""
    submission = await submit(client, _imported(workload, detector, finding_id), settings)
    handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
    await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
    repeat = sample_finding(workload.instance_id, workload.account_id, workload.region, finding_id=finding_id[::-1])
    await submit(client, parse_guardduty(repeat), settings)
    await wait_for(handle, lambda s: len(s.findings_absorbed) == 2)
    await handle.signal("approve", {"by": "alice", "comment": "confirmed", "eradication": "stop"})
    assert (await handle.result()).status == Status.RESOLVED
    history = await handle.fetch_history()
    return WorkflowHistory.from_json(submission.workflow_id, history.to_json())


def _patch_markers(history: WorkflowHistory) -> list[str]:
    ids = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and marker.marker_name == PATCH_MARKER:
            ids.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return ids


def _scheduled(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def _replay(history: WorkflowHistory) -> BaseException | None:
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=pydantic_data_converter)
    return (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure


async def test_an_incident_from_before_the_new_steps_replays_and_a_new_one_records_where_it_took_them(
    dev_env, workload, security_hub, monkeypatch
):
    client = dev_env.client
    with monkeypatch.context() as before:  # every gate closed: the incident as the previous release ran it
        before.setattr(temporalio.workflow, "patched", lambda patch_id: False)
        async with running_worker(client) as settings:
            old = await _incident_history(client, settings, workload, security_hub, "1" * 32)
    assert _patch_markers(old) == []
    assert "update_source_findings" not in _scheduled(old), "no gated step in the old history"
    assert await _replay(old) is None, "it replays on this code"
    with monkeypatch.context() as ungated:  # were the steps not gated, the old history would not replay
        ungated.setattr(temporalio.workflow, "patched", lambda patch_id: True)
        assert await _replay(old) is not None

    async with running_worker(client) as settings:
        new = await _incident_history(client, settings, workload, security_hub, "2" * 32)
    # issue 16's gate (analysis through the server, so a lost workflow task cannot re-read a contained state) too
    assert _patch_markers(new) == [PRIOR_STATE_SETTLED, NOTIFY_CONTAINED, JOINED_FINDING, BEFORE_REPORT, CLOSE_THE_LOOP]
    assert _scheduled(new).count("update_source_findings") == 2, "NOTIFIED when contained, RESOLVED at the end"
    assert await _replay(new) is None
