"""Attack sequences fan out, end to end through a dev server with moto as the account: a GuardDuty
`AttackSequence:*` finding naming the demo instance and the demo user's access key opens its own incident and one
incident per resource (through the listener's path, `activities/sequences.py`); each is contained by its own
playbook; the parent's report rolls them up, and only the parent tells GuardDuty what came of the sequence. A
repeated sequence joins; an updated one (same id, more resources) opens the resources it adds; fan-out off opens
nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from activities.notify import forget_aliases
from activities.sequences import ChildNotOpened, SequenceFanout
from irflow.devstack import moto_fidelity_findings
from irflow.devstack.demo_sequence import sample_attack_sequence, workload_attack_sequence
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentState, Status
from irflow.models.settings import get_settings
from tests.support import (
    observed_instance,
    open_incident,
    quarantine_groups,
    read_evidence,
    reject_open_incidents,
    running_worker,
    wait_for,
)
from workflows.incident import IncidentWorkflow
from workflows.sequence_playbook import fanout_words, named_words


def _key_status(workload) -> str:
    keys = boto3.client("iam").list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
    return next(k["Status"] for k in keys if k["AccessKeyId"] == workload.access_key_id)


def _report(state: IncidentState, name: str) -> bytes:
    (stored,) = [e for e in state.evidence if e.key == f"incidents/{state.incident_id}/report/{name}"]
    return read_evidence(stored)


@pytest.fixture
def detector(workload) -> str:
    """GuardDuty on in the demo account; moto answers the calls that close the loop."""
    moto_fidelity_findings.apply()
    forget_aliases()
    return boto3.client("guardduty", region_name=workload.region).create_detector(Enable=True)["DetectorId"]


def _in_detector(event: dict, workload, detector: str) -> dict:
    """The sequence as the account's detector reports it (its ARN and detector id are that detector's)."""
    detail = event["detail"]
    detail["service"]["detectorId"] = detector
    detail["arn"] = (
        f"arn:aws:guardduty:{workload.region}:{workload.account_id}:detector/{detector}/finding/{detail['id']}"
    )
    return event


async def _submit(client, settings, event):
    submission = await submit(client, parse_guardduty(event), settings)
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def _open_sequence(client, settings, workload, **kwargs):
    return await _submit(client, settings, workload_attack_sequence(workload, **kwargs))


async def test_a_sequence_opens_an_incident_per_resource_each_contained_and_the_report_rolls_them_up(
    dev_env, workload, detector
):
    client = dev_env.client
    event = _in_detector(workload_attack_sequence(workload), workload, detector)
    sequence_id = event["detail"]["id"]
    async with running_worker(client) as settings:
        submission, parent = await _submit(client, settings, event)
        assert submission.workflow_id.startswith(f"sequence-{workload.account_id}-{workload.region}-")
        state = await wait_for(parent, lambda s: s.status == Status.AWAITING_DECISION and len(s.children) == 2)
        assert state.playbook == "attack-sequence" and state.pending_decision.kind == "triage"
        by_playbook = {c.playbook: c for c in state.children}
        assert set(by_playbook) == {"ec2-instance", "iam-user-credentials"}
        instance_child, key_child = by_playbook["ec2-instance"], by_playbook["iam-user-credentials"]
        assert instance_child.workflow_id == f"ec2-{workload.account_id}-{workload.region}-{workload.instance_id}"
        assert instance_child.resource_id == workload.instance_id and not instance_child.joined
        assert workload.iam_user not in key_child.workflow_id, "identities only hashed in workflow ids"
        assert state.related_incidents == [c.workflow_id for c in state.children]
        assert any("not opened: EC2_NETWORK_INTERFACE" in r for r in state.plan_reasons), state.plan_reasons
        assert not [a for a in state.actions if a.phase == "containment"], "the parent contains nothing itself"

        # Each child is the incident a finding about its resource opens, and its own playbook contains it.
        instance = client.get_workflow_handle_for(IncidentWorkflow.run, instance_child.workflow_id)
        key = client.get_workflow_handle_for(IncidentWorkflow.run, key_child.workflow_id)
        for handle in (instance, key):
            child = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.contained_at)
            assert child.finding.type == "AttackSequence:IAM/CompromisedCredentials"
        [quarantine] = quarantine_groups(workload)
        enis = observed_instance(workload)["enis"]
        assert len(enis) == 2 and all(groups == [quarantine["GroupId"]] for groups in enis.values())
        assert _key_status(workload) == "Inactive"

        # The key's incident is rejected first (the key is Active again); the instance's still waits.
        await key.signal("reject", {"by": "bob", "reason": "the deploy key was rotated already"})
        rejected = await key.result()
        assert rejected.status == Status.ROLLED_BACK
        assert _key_status(workload) == "Active"
        # The child carries the sequence's finding, handed over by the parent: its verdict is not the sequence's.
        assert _said_to_guardduty(workload) == {}, "a rejected child says nothing of the whole sequence"
        assert "update_source_findings" not in [a.name for a in rejected.actions]
        await parent.signal("approve", {"by": "alice", "comment": "both resources handled in their incidents"})
        final = await parent.result()
        assert final.status == Status.RESOLVED
        assert _said_to_guardduty(workload) == {
            sequence_id: {
                "detector_id": detector,
                "feedback": "USEFUL",
                "comments": f"irflow incident {final.incident_id} (confirmed): confirmed by alice",
                "archived": False,
            }
        }

        report = json.loads(_report(final, "report.json"))
        children = {c["playbook"]: c for c in report["children"]}
        assert children["ec2-instance"]["status"] == "awaiting_decision"
        assert children["ec2-instance"]["time_to_contain_seconds"] > 0
        assert children["iam-user-credentials"]["status"] == "rolled_back"
        assert children["iam-user-credentials"]["time_to_contain_seconds"] > 0
        assert children["iam-user-credentials"]["decisions"] == [
            "reject (eradication) by bob: the deploy key was rotated already"
        ]
        markdown = _report(final, "report.md").decode()
        section = markdown.split("## Incidents of the resources the sequence names", 1)[1].split("\n## ", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
        assert len(rows) == 2
        assert any(instance_child.incident_id in r and "awaiting_decision" in r for r in rows), rows
        assert any(
            key_child.incident_id in r and "rolled_back" in r and "reject (eradication) by bob" in r for r in rows
        )
        await reject_open_incidents(client, [instance_child.workflow_id])
    assert list(_said_to_guardduty(workload)) == [sequence_id], "the instance's rejection is not the sequence's"


def _said_to_guardduty(workload) -> dict:
    return moto_fidelity_findings.guardduty_findings(workload.account_id, workload.region)


async def test_an_updated_sequence_opens_the_incidents_of_the_resources_it_adds(dev_env, workload):
    client = dev_env.client
    at = datetime.now(UTC).replace(microsecond=0)
    finding_id = "5e9" + "0" * 29
    async with running_worker(client) as settings:
        first, parent = await _open_sequence(client, settings, workload, finding_id=finding_id, now=at)
        state = await wait_for(parent, lambda s: s.status == Status.AWAITING_DECISION and len(s.children) == 2)
        known = {c.workflow_id: c for c in state.children}

        # GuardDuty updates the sequence in place: the same finding, later, naming the other web instance too.
        updated = workload_attack_sequence(workload, finding_id=finding_id, now=at + timedelta(minutes=5))
        named = updated["detail"]["service"]["detection"]["sequence"]["resources"]
        named.append(
            {
                "uid": workload.other_instance_id,
                "resourceType": "EC2_INSTANCE",
                "accountId": workload.account_id,
                "region": workload.region,
            }
        )
        again, _ = await _submit(client, settings, updated)
        assert again.joined and again.incident_id == first.incident_id
        state = await wait_for(parent, lambda s: len(s.children) == 3)
        [added] = [c for c in state.children if c.workflow_id not in known]
        assert added.resource_id == workload.other_instance_id and added.playbook == "ec2-instance" and not added.joined
        assert all(c == known[c.workflow_id] for c in state.children if c.workflow_id in known), "known ones as were"
        child = await wait_for(client.get_workflow_handle(added.workflow_id), lambda s: s.contained_at)
        assert child.finding.sequence_parent == first.incident_id
        assert any(e.event == "sequence updated: 1 new resource(s) named" for e in state.timeline)
        await parent.signal("approve", {"by": "alice", "comment": "handled"})
        final = await parent.result()
        report = json.loads(_report(final, "report.json"))
        assert workload.other_instance_id in [c["resource_id"] for c in report["children"]]
        await reject_open_incidents(client, [c.workflow_id for c in state.children])


async def test_a_repeated_sequence_joins_and_a_resource_already_in_an_incident_is_joined(dev_env, workload):
    client = dev_env.client
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)  # the dev server outlives a test
    async with running_worker(client) as settings:
        instance_submission, instance = await open_incident(client, settings, workload)
        await wait_for(instance, lambda s: s.status == Status.AWAITING_DECISION)
        seen = datetime.now(UTC)
        first, parent = await _open_sequence(client, settings, workload, now=seen)
        state = await wait_for(parent, lambda s: s.status == Status.AWAITING_DECISION and len(s.children) == 2)
        joined = next(c for c in state.children if c.playbook == "ec2-instance")
        assert joined.joined and joined.incident_id == instance_submission.incident_id
        await wait_for(instance, lambda s: len(s.findings_absorbed) == 2)  # the sequence joined the instance's

        # GuardDuty's repeat: the same sequence, updated later (made "now" twice in one second it would be the same
        # record, a redelivery, and rightly not counted)
        again, _ = await _open_sequence(client, settings, workload, now=seen + timedelta(minutes=1))
        assert again.joined and again.incident_id == first.incident_id
        state = await wait_for(parent, lambda s: s.finding_deliveries == 2)
        assert len(state.children) == 2, "a repeated sequence opens no new children"
        for child in state.children:
            since = f"WorkflowId = '{child.workflow_id}' AND StartTime >= '{started.isoformat()}'"
            runs = [w async for w in client.list_workflows(since)]
            assert len(runs) == 1, child.workflow_id
        await reject_open_incidents(client, [parent.id, *(c.workflow_id for c in state.children)])


async def test_with_fan_out_off_the_sequence_opens_no_child(dev_env, workload, monkeypatch):
    monkeypatch.setenv("IRFLOW_ATTACK_SEQUENCE_FANOUT", "false")
    get_settings.cache_clear()
    before = observed_instance(workload)["enis"]
    client = dev_env.client
    async with running_worker(client) as settings:
        _, parent = await _open_sequence(client, settings, workload, finding_id="0ff" * 10 + "00")
        state = await wait_for(parent, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.children == [] and state.related_incidents == []
        assert any("IRFLOW_ATTACK_SEQUENCE_FANOUT=false" in r for r in state.plan_reasons)
        await parent.signal("approve", {"by": "alice", "comment": "handled by hand"})
        final = await parent.result()
    assert final.status == Status.RESOLVED
    assert json.loads(_report(final, "report.json"))["children"] == []
    assert observed_instance(workload)["enis"] == before and _key_status(workload) == "Active"


def test_the_analysis_says_how_many_resources_the_sequence_named_and_how_many_were_read():
    finding = parse_guardduty(sample_attack_sequence("i-0a1b2c3d4e5f60718", "AKIAQWERTYUIOPASDF12", "alice")).finding
    assert named_words(finding) == "the sequence names 3 resource(s)"
    capped = finding.model_copy(update={"sequence_resources_named": 401})
    assert named_words(capped) == (
        "the sequence names 401 resource(s); 398 left out (unreadable, named twice, or beyond the first 50)"
    )
    bare = finding.model_copy(update={"sequence_resources": (), "sequence_resources_named": 0})
    assert named_words(bare) == "the sequence names no resource: nothing to open"
    assert fanout_words(None) == [
        "the resources' incidents could not be opened (see the failed action): an analyst opens them"
    ]
    [key, *_] = finding.sequence_resources
    failed = SequenceFanout(enabled=True, failed=[ChildNotOpened(resource=key, error="RPCError: unavailable")])
    assert fanout_words(failed) == [
        "not opened: AccessKey AKIAQWERTYUIOPASDF12: its incident could not be started (RPCError: unavailable): "
        "an analyst opens it"
    ]
