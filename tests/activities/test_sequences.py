"""The fan-out of an attack sequence, piece by piece (the whole of it, through the workflow, is
tests/workflows/test_sequence_playbook.py): which resources become incidents and which are only listed, with why
(another account only where the listener would answer for it); each submission on its own (one refused, the others
open); run twice, nothing twice; and the roll-up, which reads each child incident back, the child's own run even after
its resource had another, and asks the child whether the parent opened it or joined it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

import activities.sequences
from activities.sequences import (
    ChildIncidentsInput,
    SequenceFanoutInput,
    answering,
    decision_words,
    open_sequence_incidents,
    plan_children,
    read_child_incidents,
    rolled_up,
)
from irflow.devstack.demo import sample_finding
from irflow.devstack.demo_sequence import sample_attack_sequence, workload_attack_sequence
from irflow.intake.submit import submit
from irflow.intake.trust import TrustPolicy
from irflow.models.finding import Finding, parse_guardduty
from irflow.models.incident import Decision, DecisionKind, IncidentState, Status
from irflow.models.sequence import ChildIncident
from irflow.models.settings import IrflowSettings
from tests.activities.report_support import _state
from tests.support import reject_open_incidents, running_worker, wait_for
from workflows.incident import IncidentWorkflow

INSTANCE, KEY, USER = "i-0a1b2c3d4e5f60718", "AKIAQWERTYUIOPASDF12", "alice.martin"
ACCOUNT, REGION = "111122223333", "eu-west-1"


def _sequence(*resources: dict[str, Any]) -> Finding:
    event = sample_attack_sequence(INSTANCE, KEY, USER, ACCOUNT, REGION)
    if resources:
        event["detail"]["service"]["detection"]["sequence"]["resources"] = list(resources)
    return parse_guardduty(event).finding


PARENT = "sequence-111122223333-eu-west-1-finding-x-20260301T090000Z"
OWN_ACCOUNT_ONLY = TrustPolicy(accounts=frozenset({ACCOUNT}))


def _planned(
    sequence: Finding, trust: TrustPolicy = OWN_ACCOUNT_ONLY, **settings: Any
) -> tuple[list[tuple[str, str]], list[str]]:
    planned, not_opened = plan_children(sequence, IrflowSettings(**settings), PARENT, trust)
    assert all(finding.sequence_parent == PARENT for finding, _ in planned), "each child is marked as handed over"
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


def _elsewhere(account: str) -> dict[str, Any]:
    return {"uid": INSTANCE, "resourceType": "EC2_INSTANCE", "accountId": account}


def _answered(**settings: Any) -> TrustPolicy:
    return answering(IrflowSettings(**settings))


def test_a_resource_in_another_account_is_opened_only_when_irflow_answers_for_it():
    sequence = _sequence(_elsewhere("444455556666"))
    planned, not_opened = _planned(sequence, _answered(accounts=[ACCOUNT]))
    assert planned == [] and not_opened == [
        f"Instance {INSTANCE}: finding {sequence.id} is about account 444455556666, which irflow does not answer for "
        "(IRFLOW_ACCOUNTS)"
    ]
    planned, not_opened = _planned(sequence, _answered(accounts=[ACCOUNT, "444455556666"]))
    assert planned == [("ec2-instance", INSTANCE)] and not_opened == []


def test_without_irflow_accounts_the_organizations_accounts_are_answered_for_as_the_listener_does(aws):
    organizations = boto3.client("organizations")
    organizations.create_organization(FeatureSet="ALL")
    status = organizations.create_account(AccountName="payments", Email="payments@example.com")["CreateAccountStatus"]
    member = organizations.describe_create_account_status(CreateAccountRequestId=status["Id"])
    member_id = member["CreateAccountStatus"]["AccountId"]
    trust = _answered(accounts_from_organization=True)
    planned, _ = _planned(_sequence(_elsewhere(member_id)), trust)
    assert planned == [("ec2-instance", INSTANCE)]
    planned, not_opened = _planned(_sequence(_elsewhere("444455556666")), trust)
    assert planned == [] and "IRFLOW_ACCOUNTS_FROM_ORGANIZATION" in not_opened[0], not_opened


def test_without_either_the_account_of_irflows_own_credentials_is_answered_for(aws):
    own = boto3.client("sts").get_caller_identity()["Account"]
    assert own != ACCOUNT, "the sequence is about another account than the worker's"
    planned, _ = _planned(_sequence(_elsewhere(own)), _answered())
    assert planned == [("ec2-instance", INSTANCE)]
    planned, not_opened = _planned(_sequence(_elsewhere("444455556666")), _answered())
    assert planned == [] and "the account of irflow's credentials" in not_opened[0], not_opened


def test_when_aws_does_not_say_which_accounts_no_other_account_is_opened_saying_why(aws):
    trust = _answered(accounts_from_organization=True)  # moto: no organization
    planned, not_opened = _planned(_sequence(_elsewhere("444455556666")), trust)
    assert planned == [] and "cannot tell which accounts irflow answers for" in not_opened[0], not_opened


def test_an_instance_whose_arn_contradicts_the_sequence_is_listed_with_why_never_opened():
    arn = f"arn:aws:ec2:{REGION}:444455556666:instance/{INSTANCE}"
    contradicted = {"uid": arn, "resourceType": "EC2_INSTANCE", "accountId": ACCOUNT}
    planned, not_opened = _planned(_sequence(contradicted), _answered(accounts=[ACCOUNT, "444455556666"]))
    assert planned == [] and not_opened == [
        f"Instance {INSTANCE}: its ARN says account 444455556666, the sequence {ACCOUNT}: irflow does not guess"
    ]


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
    child = rolled_up(_child(), state, PARENT)
    assert (child.status, child.received_at, child.contained_at) == ("resolved", state.received_at, state.contained_at)
    assert child.time_to_contain_seconds == 42.5
    assert child.decisions == [
        "approve (eradication) by alice@example.com, eradication: terminate: confirmed C2 traffic"
    ]
    refused = Decision(kind=DecisionKind.APPROVE, by="mallory", at=state.decided_at, accepted=False, refusal="no")
    assert rolled_up(_child(), state.model_copy(update={"decisions": [refused]}), PARENT).decisions == []
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


def test_the_child_says_whether_the_parent_opened_it_or_joined_it():
    state = _state()  # opened by a finding of its own
    assert rolled_up(_child(joined=False), state, PARENT).joined
    handed_over = state.finding.model_copy(update={"sequence_parent": PARENT})
    opened = state.model_copy(update={"finding": handed_over})
    assert not rolled_up(_child(joined=True), opened, PARENT).joined
    assert rolled_up(_child(joined=False), opened, "sequence-another-parent").joined


async def _fan_out(client, settings, workload, parent: str):
    request = SequenceFanoutInput(
        incident_id=parent,
        finding=parse_guardduty(workload_attack_sequence(workload, finding_id=uuid.uuid4().hex)).finding,
        task_queue=settings.task_queue,
    )
    return await ActivityEnvironment(client=client).run(open_sequence_incidents, request)


async def test_a_fan_out_run_twice_opens_each_child_once_and_the_roll_up_still_says_opened(dev_env, workload):
    client = dev_env.client
    parent = f"sequence-test-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)  # the dev server outlives a test
    async with running_worker(client) as settings:
        first = await _fan_out(client, settings, workload, parent)
        again = await _fan_out(client, settings, workload, parent)  # a local activity retried after a worker died
        assert [c.workflow_id for c in again.children] == [c.workflow_id for c in first.children]
        assert len(first.children) == 2 and not any(c.joined for c in first.children)
        assert all(c.joined for c in again.children), "Temporal says: running already"
        for child in first.children:
            since = f"WorkflowId = '{child.workflow_id}' AND StartTime >= '{started.isoformat()}'"
            assert len([w async for w in client.list_workflows(since)]) == 1, child.workflow_id
            state = await wait_for(client.get_workflow_handle(child.workflow_id), lambda s: s.contained_at)
            assert state.finding_deliveries == 1 and state.finding.sequence_parent == parent
        request = ChildIncidentsInput(incident_id=parent, children=again.children)
        read = await ActivityEnvironment(client=client).run(read_child_incidents, request)
        assert [c.joined for c in read] == [False, False], "the child says who opened it"
        await reject_open_incidents(client, [c.workflow_id for c in first.children])


async def test_one_submission_refused_leaves_the_others_opened_and_says_which_and_why(dev_env, workload, monkeypatch):
    real = activities.sequences.open_related_incident

    async def refusing_the_instance(asking, finding, raw, settings, subject):
        if finding.resource.instance_id == workload.instance_id:
            raise RPCError("namespace rate limit exceeded", RPCStatusCode.RESOURCE_EXHAUSTED, b"")
        return await real(asking, finding, raw, settings, subject=subject)

    monkeypatch.setattr(activities.sequences, "open_related_incident", refusing_the_instance)
    client = dev_env.client
    async with running_worker(client) as settings:
        fanout = await _fan_out(client, settings, workload, f"sequence-test-{uuid.uuid4().hex[:8]}")
        [opened] = fanout.children
        assert opened.playbook == "iam-user-credentials" and not opened.joined
        [failed] = fanout.failed
        assert failed.resource.instance_id == workload.instance_id
        assert failed.error == "RPCError: namespace rate limit exceeded"
        await reject_open_incidents(client, [opened.workflow_id])
