"""Handing a finding to Temporal: one incident per resource (signal-with-start), started with the search
attributes and memo the CLI and the UI find it by. No worker here: what Temporal holds is what is checked."""

from __future__ import annotations

import uuid

from irflow.devstack.demo import sample_access_key_finding, sample_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import INCIDENT_WORKFLOW, incident_hash
from irflow.models.settings import IrflowSettings
from irflow.visibility import identity_hash
from workflows import search_attributes as sa


async def test_the_first_finding_opens_the_incident_and_a_later_one_joins_it(dev_env):
    client = dev_env.client
    settings = IrflowSettings(task_queue=f"nobody-{uuid.uuid4().hex}")  # nobody works on it: it stays as started
    instance = f"i-{uuid.uuid4().hex[:17]}"
    first = await submit(client, parse_guardduty(sample_finding(instance, finding_id=uuid.uuid4().hex)), settings)
    second = await submit(
        client, parse_guardduty(sample_finding(instance, finding_id=uuid.uuid4().hex)), settings, origin="queue"
    )
    handle = client.get_workflow_handle(first.workflow_id)
    try:
        assert not first.joined and second.joined
        assert second.workflow_id == first.workflow_id and second.incident_id == first.incident_id
        assert first.workflow_id == f"ec2-123456789012-us-east-1-{instance}"
        assert first.incident_id.startswith(first.workflow_id + "-")

        described = await handle.describe()
        assert described.workflow_type == INCIDENT_WORKFLOW
        assert (await described.memo())["incident_id"] == first.incident_id
        attributes = described.typed_search_attributes
        assert attributes.get(sa.INCIDENT_HASH) == incident_hash(first.incident_id)
        assert attributes.get(sa.STATUS) == "active" and attributes.get(sa.PHASE) == "detection_analysis"
        assert attributes.get(sa.RESOURCE_ID) == instance and attributes.get(sa.SEVERITY) == "HIGH"
        history = [e async for e in handle.fetch_history_events()]
        signals = [e for e in history if e.HasField("workflow_execution_signaled_event_attributes")]
        assert len(signals) == 2, "each finding reached the incident as an add_finding signal"
    finally:
        await handle.terminate("test over")


async def test_an_identity_is_started_with_only_its_hash_in_what_is_never_encrypted(dev_env):
    """Without the codec the summary and details are in clear too: they show the hash, not the user's name, the
    finding's title (it names the user) or its remote address."""
    client = dev_env.client
    settings = IrflowSettings(task_queue=f"nobody-{uuid.uuid4().hex}")
    user = f"jane.doe-{uuid.uuid4().hex[:6]}"
    event = sample_access_key_finding(user, "AKIAEXAMPLEJANEDOE01", finding_id=uuid.uuid4().hex)
    submission = await submit(client, parse_guardduty(event), settings)
    handle = client.get_workflow_handle(submission.workflow_id)
    try:
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.RESOURCE_ID) == identity_hash(user)
        summary, details = await described.static_summary(), await described.static_details()
        assert identity_hash(user) in summary and identity_hash(user) in details
        for shown in (summary, details, submission.workflow_id):
            assert user not in shown and "AKIAEXAMPLEJANEDOE01" not in shown and "198.51.100.23" not in shown
    finally:
        await handle.terminate("test over")
