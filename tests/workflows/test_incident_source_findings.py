"""Closing the loop with AWS, end to end through a real Temporal dev server, with moto as the account
(workflows/closing.py drives it from the incident; activities/source_findings.py makes the calls).

moto 5.2 lacks GuardDuty's UpdateFindingsFeedback and ArchiveFindings and Security Hub's BatchUpdateFindings:
irflow/devstack/moto_fidelity_findings.py answers them as AWS documents them (each request checked against
botocore's model) and keeps what they said, where a person would look: Security Hub's GetFindings, and what GuardDuty
was told of each finding.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from activities.notify import forget_aliases
from irflow.devstack import moto_fidelity_findings
from irflow.devstack.demo import sample_finding
from irflow.intake.listener import FindingListener
from irflow.intake.submit import submit
from irflow.models.asff import parse_asff
from irflow.models.finding import parse_guardduty
from irflow.models.incident import ActionStatus, Decision, DecisionKind, IncidentState, Status
from irflow.models.source_findings import Verdict
from tests.activities.test_source_findings import asff_record
from tests.irflow.intake.listener_support import _depth, _findings_queue, _listen_until, _send
from tests.support import notifications, read_evidence, running_worker, wait_for
from workflows.closing import closing_verdict
from workflows.incident import IncidentWorkflow


@pytest.fixture
def detector(workload) -> str:
    """GuardDuty on in the demo account; moto answers the calls that close the loop."""
    moto_fidelity_findings.apply()  # until irflow.devstack.moto_fidelity installs it with the other corrections
    forget_aliases()
    return boto3.client("guardduty", region_name=workload.region).create_detector(Enable=True)["DetectorId"]


def _guardduty_arn(workload, detector: str, finding_id: str) -> str:
    return f"arn:aws:guardduty:{workload.region}:{workload.account_id}:detector/{detector}/finding/{finding_id}"


def _said_to_guardduty(workload) -> dict:
    return moto_fidelity_findings.guardduty_findings(workload.account_id, workload.region)


def _guardduty_copy_in_security_hub(workload, detector: str, guardduty_id: str, **record) -> dict:
    """A GuardDuty finding about the demo instance as Security Hub holds it (imported there); its ASFF record."""
    instance = {
        "Type": "AwsEc2Instance",
        "Id": f"arn:aws:ec2:{workload.region}:{workload.account_id}:instance/{workload.instance_id}",
        "Partition": "aws",
        "Region": workload.region,
        "Details": {"AwsEc2Instance": {"VpcId": workload.vpc_id}},
    }
    made = asff_record(
        _guardduty_arn(workload, detector, guardduty_id),
        product_arn=f"arn:aws:securityhub:{workload.region}::product/aws/guardduty",
        resource=instance,
        account=workload.account_id,
        region=workload.region,
        product_name="GuardDuty",
    )
    made.update(record)
    securityhub = boto3.client("securityhub", region_name=workload.region)
    securityhub.enable_security_hub()
    securityhub.batch_import_findings(Findings=[made])
    return made


def _stored(workload) -> dict:
    """The finding as Security Hub shows it now (GetFindings): what its "Findings - Imported" events carry."""
    [finding] = boto3.client("securityhub", region_name=workload.region).get_findings()["Findings"]
    return finding


def _report_actions(final) -> list[str]:
    [report] = [e for e in final.evidence if e.key == f"incidents/{final.incident_id}/report/report.json"]
    return [a["name"] for a in json.loads(read_evidence(report))["actions"]]


async def test_a_rejected_guardduty_incident_sends_not_useful_feedback_and_archives_the_finding(
    dev_env, workload, detector
):
    client = dev_env.client
    event = sample_finding(workload.instance_id, workload.account_id, workload.region, severity=2.0)
    finding_id = event["detail"]["id"]
    event["detail"]["service"]["detectorId"] = detector
    event["detail"]["arn"] = _guardduty_arn(workload, detector, finding_id)
    async with running_worker(client) as settings:
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert _said_to_guardduty(workload) == {}, "nothing is said before the verdict"
        await handle.signal("reject", {"by": "dave", "reason": "our own scanner"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert _said_to_guardduty(workload) == {
        finding_id: {
            "detector_id": detector,
            "feedback": "NOT_USEFUL",
            "comments": f"irflow incident {final.incident_id} (false-positive): rejected as a false positive by dave: "
            "our own scanner",
            "archived": True,  # IRFLOW_ARCHIVE_GUARDDUTY_FINDINGS=false-positive, the default
        }
    }
    [told] = [a for a in final.actions if a.name == "update_source_findings"]
    assert told.status == ActionStatus.DONE and told.result["failed"] == [], told.result
    assert "update_source_findings" in _report_actions(final), "the report shows it"

    # Every message links the incident's account, resource, finding and workflow.
    last = notifications(workload)[-1]
    assert last["account_alias"] == workload.account_id
    assert last["links"] == {
        "resource": f"https://console.aws.amazon.com/ec2/home?region={workload.region}"
        f"#InstanceDetails:instanceId={workload.instance_id}",
        "finding": f"https://console.aws.amazon.com/guardduty/home?region={workload.region}"
        f"#/findings?macros=current&fId={finding_id}",
        "incident": f"http://localhost:8233/namespaces/{client.namespace}/workflows/{submission.workflow_id}",
    }


async def test_a_confirmed_security_hub_incident_is_notified_when_contained_and_ends_resolved_with_its_note(
    dev_env, workload, detector
):
    client = dev_env.client
    guardduty_id = "5" * 32
    record = _guardduty_copy_in_security_hub(workload, detector, guardduty_id)
    async with running_worker(client) as settings:
        submission = await submit(client, parse_asff(record), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        state = await wait_for(
            handle,
            lambda s: (
                s.status == Status.AWAITING_DECISION and any(a.name == "update_source_findings" for a in s.actions)
            ),
        )
        assert state.contained_at is not None
        assert _stored(workload)["Workflow"] == {"Status": "NOTIFIED"}
        assert (
            _stored(workload)["Note"]["Text"]
            == f"irflow incident {state.incident_id} (contained): contained; an analyst decides next"
        )
        await handle.signal("approve", {"by": "alice", "comment": "confirmed C2", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    finding = _stored(workload)
    assert finding["Workflow"] == {"Status": "RESOLVED"} and finding["VerificationState"] == "TRUE_POSITIVE"
    assert (
        finding["Note"]["Text"]
        == f"irflow incident {final.incident_id} (confirmed): confirmed by alice; eradication: stop"
    )
    assert finding["Note"]["UpdatedBy"] == "irflow"
    statuses = [
        r["params"]["Workflow"]["Status"]
        for r in moto_fidelity_findings.received("securityhub", workload.account_id, workload.region)
    ]
    assert statuses == ["NOTIFIED", "RESOLVED"]
    # A GuardDuty finding seen through Security Hub is GuardDuty's too: USEFUL, and not archived (not a false positive).
    assert _said_to_guardduty(workload) == {
        guardduty_id: {
            "detector_id": detector,
            "feedback": "USEFUL",
            "comments": f"irflow incident {final.incident_id} (confirmed): confirmed by alice; eradication: stop",
            "archived": False,
        }
    }


async def test_a_cancelled_incident_leaves_its_findings_as_they_are_and_says_why(dev_env, workload, detector):
    client = dev_env.client
    event = sample_finding(workload.instance_id, workload.account_id, workload.region)
    event["detail"]["service"]["detectorId"] = detector
    event["detail"]["arn"] = _guardduty_arn(workload, detector, event["detail"]["id"])
    async with running_worker(client) as settings:
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await handle.query("current_state", result_type=IncidentState)
    assert final.status == Status.FAILED and final.report_keys, "the incident ended and wrote its report"
    assert "update_source_findings" not in [a.name for a in final.actions]
    assert _said_to_guardduty(workload) == {}
    notes = [t.event for t in final.timeline if t.event.startswith("source findings left as they are")]
    assert notes == [
        "source findings left as they are: the incident ended failed: cancelled by request; nobody judged its findings"
    ]


async def test_a_finding_another_incident_handed_over_is_left_to_that_incident(dev_env, workload, detector):
    """An attack sequence's child (or a role's instance) carries the parent's finding: rejecting the child must not
    mark the whole sequence NOT_USEFUL, nor archive it while the parent is open."""
    client = dev_env.client
    event = sample_finding(workload.instance_id, workload.account_id, workload.region, severity=2.0)
    event["detail"]["service"]["detectorId"] = detector
    event["detail"]["arn"] = _guardduty_arn(workload, detector, event["detail"]["id"])
    async with running_worker(client) as settings:
        submission = await submit(
            client, parse_guardduty(event), settings, delivery_id=f"incident:sequence-parent-1:{workload.instance_id}"
        )
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "dave", "reason": "our own scanner"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert _said_to_guardduty(workload) == {}
    assert "update_source_findings" not in [a.name for a in final.actions]
    assert [t.event for t in final.timeline if t.event.startswith("not told to AWS")] == [
        f"not told to AWS: {event['detail']['id']}: handed over by incident sequence-parent-1"
    ]


def _imported(workload, finding: dict) -> dict:
    """The EventBridge event Security Hub sends when a finding is imported or updated."""
    return {
        "version": "0",
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": workload.account_id,
        "region": workload.region,
        "detail": {"findings": [finding]},
    }


async def test_the_attacker_s_return_to_a_finding_irflow_resolved_opens_a_new_incident(dev_env, workload, detector):
    """Security Hub keeps irflow's RESOLVED when GuardDuty folds repeated activity into the same finding (count up,
    UpdatedAt later): that return reaches a new incident, while irflow's own update of the finding stays quiet."""
    client = dev_env.client
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    record = _guardduty_copy_in_security_hub(
        workload, detector, "6" * 32, CreatedAt=an_hour_ago, UpdatedAt=an_hour_ago, ProductFields={"count": "1"}
    )
    sqs = boto3.client("sqs", region_name=workload.region)
    dead_letters = sqs.create_queue(QueueName="findings-dlq")["QueueUrl"]
    queue = _findings_queue(sqs, dead_letters)
    async with running_worker(client) as settings:
        submission = await submit(client, parse_asff(record), settings)
        first = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(first, lambda s: s.status == Status.AWAITING_DECISION)
        await first.signal("approve", {"by": "alice", "comment": "confirmed C2", "eradication": "stop"})
        resolved = await first.result()
        assert resolved.status == Status.RESOLVED
        told = _stored(workload)  # RESOLVED, irflow's note: what Security Hub sends for irflow's own update
        assert (told["Workflow"]["Status"], told["Note"]["UpdatedBy"]) == ("RESOLVED", "irflow")
        noted_at = datetime.fromisoformat(told["Note"]["UpdatedAt"].replace("Z", "+00:00"))
        came_back = {  # GuardDuty's update of the same finding; Security Hub keeps Workflow and Note
            **told,
            "UpdatedAt": (noted_at + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
            "ProductFields": {**told["ProductFields"], "count": "2"},
        }
        _send(sqs, queue, [_imported(workload, told), _imported(workload, came_back)])
        listener = FindingListener(client, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.deleted >= 2 and _depth(sqs, queue) == 0)
        again = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)  # its latest run
        reopened = await wait_for(again, lambda s: s.incident_id != resolved.incident_id)
    stats = listener.stats
    assert stats.started == 1 and stats.suppressed >= 1 and stats.dead_lettered == 0, stats.snapshot()
    assert list(stats.suppressed_by_reason) == ["Security Hub workflow status is RESOLVED"]
    assert reopened.finding.id == record["Id"] and reopened.finding.count == 2
    assert reopened.finding.updated_at > reopened.finding.note_updated_at


def _ended(status: Status, *decisions: tuple[DecisionKind, bool], eradication: str | None = None) -> IncidentState:
    finding = parse_guardduty(sample_finding("i-0123456789abcdef0")).finding
    at = datetime(2026, 12, 7, tzinfo=UTC)
    return IncidentState(
        incident_id="inc-1",
        playbook="ec2-instance",
        severity=finding.severity,
        finding=finding,
        resource_id="i-0123456789abcdef0",
        received_at=at,
        status=status,
        eradication=eradication,
        failure_reason="containment failed: boom" if status != Status.RESOLVED and not decisions else None,
        decisions=[
            Decision(kind=kind, by="alice", at=at, comment="why", accepted=accepted) for kind, accepted in decisions
        ],
    )


@pytest.mark.parametrize(
    "state, verdict, words",
    [
        (
            _ended(Status.RESOLVED, (DecisionKind.APPROVE, True), eradication="stop"),
            Verdict.CONFIRMED,
            "confirmed by alice; eradication: stop",
        ),
        (_ended(Status.RESOLVED, (DecisionKind.APPROVE, True)), Verdict.CONFIRMED, "confirmed by alice"),  # triage
        (
            _ended(Status.RESOLVED, (DecisionKind.APPROVE, True), (DecisionKind.RELEASE, True)),
            Verdict.CONFIRMED,
            "confirmed, released after recovery by alice",
        ),
        (
            _ended(Status.ROLLED_BACK, (DecisionKind.NOTE, True), (DecisionKind.REJECT, True)),
            Verdict.FALSE_POSITIVE,
            "rejected as a false positive by alice: why",
        ),
        (
            _ended(Status.ROLLED_BACK, (DecisionKind.REJECT, False), (DecisionKind.APPROVE, True)),
            None,  # approved, then containment failed and was undone: nobody judged the finding
            "the incident ended rolled_back; nobody judged its findings",
        ),
        (
            _ended(Status.ROLLED_BACK),
            None,
            "the incident ended rolled_back: containment failed: boom; nobody judged its findings",
        ),
    ],
)
def test_the_verdict_follows_how_the_incident_ended(state, verdict, words):
    assert closing_verdict(state) == (verdict, words)
