"""The EC2 incident, end to end through a real Temporal dev server, with moto as the account."""

from __future__ import annotations

import boto3

from models.incident import Phase, Status
from tests.support import (
    incident_snapshots,
    observed_instance,
    open_incident,
    quarantine_groups,
    running_worker,
    wait_for,
)


async def test_contains_collects_evidence_and_stops_on_approval(dev_env, workload):
    client = dev_env.client
    before = observed_instance(workload)
    async with running_worker(client) as settings:
        submission, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.phase == Phase.DECISION)
        contained = observed_instance(workload)
        quarantine = quarantine_groups(workload)
        assert len(quarantine) == 1
        assert all(groups == [quarantine[0]["GroupId"]] for groups in contained["enis"].values())
        assert len(contained["enis"]) == 2
        assert contained["asg_member"] == [] and contained["target_groups"] == []
        assert contained["termination_protection"] is True
        assert contained["profiles"] == []
        snaps = incident_snapshots(workload, submission.incident_id)
        assert len(snaps) == len(state.context.volumes) == 2
        await handle.signal("approve", {"by": "alice", "comment": "confirmed C2", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    assert observed_instance(workload)["state"] == "stopped"
    assert before["state"] == "running"
    s3 = boto3.client("s3")
    for item in final.evidence:
        assert item.key.startswith(f"incidents/{submission.incident_id}/")
