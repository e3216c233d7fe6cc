"""The fan-out of an attack sequence, piece by piece (the whole of it, through the workflow, is
tests/workflows/test_sequence_playbook.py): which resources become incidents and which are only listed, with why;
and the roll-up, which reads each child incident back, the child's own run even after its resource had another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.sequences import (
    ChildIncidentsInput,
    SequenceFanoutInput,
    decision_words,
    open_sequence_incidents,
    plan_children,
    read_child_incidents,
    rolled_up,
)
from irflow.devstack.demo import sample_finding
from irflow.devstack.demo_sequence import sample_attack_sequence
from irflow.intake.submit import submit
from irflow.models.finding import Finding, parse_guardduty
from irflow.models.incident import Decision, DecisionKind, IncidentState, Status
from irflow.models.sequence import ChildIncident
from irflow.models.settings import IrflowSettings
from tests.activities.report_support import _state
from tests.support import running_worker, wait_for
from workflows.incident import IncidentWorkflow

INSTANCE, KEY, USER = "i-0a1b2c3d4e5f60718", "AKIAQWERTYUIOPASDF12", "alice.martin"
ACCOUNT, REGION = "111122223333", "eu-west-1"


def _sequence(*resources: dict[str, Any]) -> Finding:
    event = sample_attack_sequence(INSTANCE, KEY, USER, ACCOUNT, REGION)
    if resources:
        event["detail"]["service"]["detection"]["sequence"]["resources"] = list(resources)
    return parse_guardduty(event).finding


def _planned(sequence: Finding, **settings: Any) -> tuple[list[tuple[str, str]], list[str]]:
    planned, not_opened = plan_children(sequence, IrflowSettings(**settings))
    return [(route.playbook, route.resource_id) for _, route in planned], not_opened


def test_resources_a_playbook_answers_are_planned_and_the_others_listed_with_why():
    planned, not_opened = _planned(_sequence())
    assert planned == [("iam-user-credentials", USER), ("ec2-instance", INSTANCE)]
    assert not_opened == [
        "EC2_NETWORK_INTERFACE eni-0abc1234def567890: no playbook answers it "
        "(no containment playbook for EC2_NETWORK_INTERFACE)"
    ]


def test_a_resource_is_screened_like_an_arrival_at_the_listener():
    planned, not_opened = _planned(_sequence(), suppress_tags=["Name=web-1"])
    assert planned == [("iam-user-credentials", USER)]
    assert f"Instance {INSTANCE}: suppressed, resource tag matches IRFLOW_SUPPRESS_TAGS rule 'Name=web-1'" in not_opened


def test_a_resource_in_another_account_is_opened_only_when_irflow_answers_for_it():
    elsewhere = {"uid": INSTANCE, "resourceType": "EC2_INSTANCE", "accountId": "444455556666"}
    planned, not_opened = _planned(_sequence(elsewhere))
    assert planned == [] and "IRFLOW_ACCOUNTS" in not_opened[0] and "444455556666" in not_opened[0]
    planned, not_opened = _planned(_sequence(elsewhere), accounts=[ACCOUNT, "444455556666"])
    assert planned == [("ec2-instance", INSTANCE)] and not_opened == []


def test_names_that_reach_one_incident_are_planned_once():
    bucket = {"uid": "arn:aws:s3:::acme-invoices", "name": "acme-invoices", "resourceType": "S3_BUCKET"}
    obj = {"uid": "arn:aws:s3:::acme-invoices/2026/03.pdf", "name": "2026/03.pdf", "resourceType": "S3_OBJECT"}
    planned, _ = _planned(_sequence(bucket, obj))
    assert planned == [("s3-bucket", "acme-invoices")]


async def test_with_fan_out_off_nothing_is_opened(monkeypatch):
    monkeypatch.setenv("IRFLOW_ATTACK_SEQUENCE_FANOUT", "false")
    request = SequenceFanoutInput(incident_id="sequence-x", finding=_sequence(), task_queue="unused")
    fanout = await ActivityEnvironment().run(open_sequence_incidents, request)  # no client: it must not submit
    assert not fanout.enabled and fanout.children == [] and fanout.not_opened == []


def _child(**fields: Any) -> ChildIncident:
    defaults = dict(workflow_id="ec2-x", incident_id="ec2-x-1", resource_type="Instance", resource_id="i-1")
    return ChildIncident(playbook="ec2-instance", **{**defaults, **fields})


def test_a_child_rolled_up_says_its_status_time_to_contain_and_decisions_in_words():
    state = _state()
    state.decisions.append(
        Decision(kind=DecisionKind.NOTE, by="dave", at=state.decided_at, comment="a note is not a decision")
    )
    child = rolled_up(_child(), state)
    assert (child.status, child.received_at, child.contained_at) == ("resolved", state.received_at, state.contained_at)
    assert child.time_to_contain_seconds == 42.5
    assert child.decisions == [
        "approve (eradication) by alice@example.com, eradication: terminate: confirmed C2 traffic"
    ]
    refused = Decision(kind=DecisionKind.APPROVE, by="mallory", at=state.decided_at, accepted=False, refusal="no")
    assert rolled_up(_child(), state.model_copy(update={"decisions": [refused]})).decisions == []
    assert decision_words(Decision(kind=DecisionKind.REJECT, by="bob", at=state.decided_at, comment="x" * 500)) == (
        "reject by bob: " + "x" * 200 + "…"
    )


async def test_the_roll_up_reads_each_childs_own_run_even_after_its_resource_had_another(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        now = datetime.now(UTC)
        first = await submit(client, parse_guardduty(sample_finding(workload.instance_id)), settings, now)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, first.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        await handle.signal("reject", {"by": "bob", "reason": "first incident done"})
        await handle.result()
        later = sample_finding(workload.instance_id, finding_id="b" * 32)
        second = await submit(client, parse_guardduty(later), settings, now + timedelta(seconds=2))
        assert second.workflow_id == first.workflow_id and second.incident_id != first.incident_id
        await wait_for(handle, lambda s: s.incident_id == second.incident_id and s.status == Status.AWAITING_DECISION)

        children = [
            _child(workflow_id=first.workflow_id, incident_id=first.incident_id),
            _child(workflow_id=second.workflow_id, incident_id=second.incident_id),
            _child(workflow_id="ec2-nobody-knows", incident_id="ec2-nobody-knows-1"),
        ]
        request = ChildIncidentsInput(incident_id="sequence-test", children=children)
        read = await ActivityEnvironment(client=client).run(read_child_incidents, request)
        assert [c.status for c in read] == [Status.ROLLED_BACK, Status.AWAITING_DECISION, "unknown"]
        assert [c.incident_id for c in read] == [first.incident_id, second.incident_id, "ec2-nobody-knows-1"]
        assert read[0].decisions == ["reject (eradication) by bob: first incident done"]
        assert read[1].contained_at and read[1].time_to_contain_seconds > 0
        await handle.signal("reject", {"by": "bob", "reason": "cleanup"})
        assert isinstance(await handle.result(), IncidentState)
