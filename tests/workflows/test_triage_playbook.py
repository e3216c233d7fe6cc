"""Triage-only incidents: what irflow cannot contain safely still gets evidence, a notification and an
analyst — never silence — and nothing in the account is changed."""

from __future__ import annotations

import asyncio
import hashlib
import json

import boto3

from irflow.devstack.demo import sample_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from tests.support import notifications, open_incident, running_worker, wait_for
from workflows.incident import IncidentWorkflow


def _eks_finding(account: str, region: str) -> dict:
    event = sample_finding(
        "i-0123456789abcdef0", account, region, finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess"
    )
    event["detail"]["resource"] = {
        "resourceType": "EKSCluster",
        "eksClusterDetails": {"name": "payments-prod", "arn": f"arn:aws:eks:{region}:{account}:cluster/payments-prod"},
    }
    return event


async def test_an_eks_finding_gets_evidence_a_notification_and_waits_for_an_analyst(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission = await submit(client, parse_guardduty(_eks_finding(workload.account_id, workload.region)), settings)
        assert submission.workflow_id.startswith("triage-ekscluster-")
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.playbook == "triage-only" and state.pending_decision.kind == "triage"
        assert any("triage only" in r for r in state.plan_reasons)
        assert not [a for a in state.actions if a.phase == "containment"], "nothing is contained"
        related = next(e for e in state.evidence if e.kind == "related-resources")
        body = boto3.client("s3").get_object(Bucket=related.bucket, Key=related.key, VersionId=related.version_id)
        raw = body["Body"].read()
        assert hashlib.sha256(raw).hexdigest() == related.sha256
        document = json.loads(raw)
        assert document["resource_type"] == "EKSCluster" and "eks:DescribeCluster" in document["descriptions"]
        assert any(e.kind == "finding" for e in state.evidence)
        sent = []
        for _ in range(50):  # the notification activity runs just after the decision is opened
            sent += notifications(workload)
            if any("decision needed" in m["subject"] for m in sent):
                break
            await asyncio.sleep(0.1)
        assert any("decision needed" in m["subject"] for m in sent)
        await handle.signal("approve", {"by": "alice", "comment": "rotated the cluster credentials by hand"})
        final = await handle.result()
    assert final.status == Status.RESOLVED and final.report_keys


async def test_an_instance_finding_without_a_valid_instance_id_is_triaged_not_dropped(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        event = sample_finding("i-0123456789abcdef0", workload.account_id, workload.region)
        event["detail"]["resource"]["instanceDetails"]["instanceId"] = "GeneratedFindingInstanceId"
        _, handle = await open_incident(client, settings, workload)  # a real incident alongside, untouched
        submission = await submit(client, parse_guardduty(event), settings)
        triage = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        state = await wait_for(triage, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.playbook == "triage-only"
        await triage.signal("reject", {"by": "bob", "reason": "sample data"})
        assert (await triage.result()).status == Status.ROLLED_BACK
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        await handle.result()
