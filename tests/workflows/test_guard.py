"""Containment is verified, not assumed (workflows/guard.py), end to end with moto as the account: a key
reactivated from outside is deactivated again when the next finding arrives; an instance put back into its groups
is isolated again by the timer (time-skipping server); nothing is touched when nothing drifted; the incident
publishes what it guards (IrflowGuarded) and stops guarding when it ends; a reject while a check is in flight
waits for it, then restores the resource exactly."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import boto3
from temporalio import activity

from activities import all_activities
from activities.postconditions import POSTCONDITIONS
from irflow.detection.tamper import tamper_finding
from irflow.devstack.demo import sample_access_key_finding
from irflow.intake.submit import submit
from irflow.intake.tamper import deliver_tamper
from irflow.models import guarded as kinds
from irflow.models.ec2 import Ec2StepInput, Ec2Target, InstanceContext, InstanceProfileState, NetworkInterfaceState
from irflow.models.finding import parse_guardduty
from irflow.models.guarded import guard_handles
from irflow.models.iam import IamRoleContext, IamRoleStepInput, IamRoleTarget
from irflow.models.incident import ActionRecord, ActionStatus, IncidentState, Phase, Status
from irflow.models.lambda_function import LambdaContext, LambdaStepInput, LambdaTarget
from irflow.models.rds import DbStepInput, DbTarget
from irflow.models.s3 import BucketStepInput, BucketTarget
from irflow.models.settings import IrflowSettings
from tests.support import notifications, observed_instance, open_incident, quarantine_groups, running_worker, wait_for
from tests.workflows.faults import _takes_what
from tests.workflows.test_iam_user_playbook import observed_user
from workflows import search_attributes as sa
from workflows.guard import guarded_handles, tamper_change
from workflows.incident import IncidentWorkflow
from workflows.playbook import TAG_STEP, Playbook

NO_MEMORY = {"capture_memory": False}
ACCOUNT = "123456789012"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def _open_user_incident(client, settings, workload, finding_id: str | None = None):
    """A finding about the workload's leaked key (a new one when `finding_id` differs): opens or joins."""
    event = sample_access_key_finding(
        workload.iam_user, workload.access_key_id, workload.account_id, workload.region, finding_id=finding_id
    )
    submission = await submit(client, parse_guardduty(event), settings)
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


def _reactivate_key(workload) -> None:
    """Someone (the attacker, a hurried admin) turns the contained key back on."""
    boto3.client("iam").update_access_key(
        UserName=workload.iam_user, AccessKeyId=workload.access_key_id, Status="Active"
    )


def _key_status(workload) -> str:
    return observed_user(workload)["keys"][workload.access_key_id]


async def _guarded(handle) -> list[str]:
    return list((await handle.describe()).typed_search_attributes.get(sa.GUARDED) or [])


async def _escalations(workload, subject: str, timeout: float = 15) -> list[dict]:
    """Escalation messages whose subject contains `subject`, once there is one (they are sent in the background)."""
    seen: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        seen += [m for m in notifications(workload) if m["topic"] == workload.escalation_topic_arn]
        if any(subject in m["subject"] for m in seen):
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"no escalation about {subject!r}; seen {[m['subject'] for m in seen]}")


async def _settled_history_length(handle, timeout: float = 30) -> int:
    """The history's length once no activity is pending (the last notification is out)."""
    for _ in range(int(timeout * 10)):
        if not (await handle.describe()).raw_description.pending_activities:
            return len((await handle.fetch_history()).events)
        await asyncio.sleep(0.1)
    raise AssertionError("activities still pending")


async def test_a_reactivated_key_is_deactivated_again_when_the_next_finding_arrives(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open_user_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert _key_status(workload) == "Inactive"
        assert sorted(await _guarded(handle)) == sorted(
            guard_handles(workload.account_id, kinds.IAM_USER, [workload.iam_user])
            + guard_handles(workload.account_id, kinds.ACCESS_KEY, [workload.access_key_id])
        )

        _reactivate_key(workload)
        assert _key_status(workload) == "Active"
        joined, _ = await _open_user_incident(client, settings, workload, finding_id="c0ffee0123456789abcdef0123456789")
        assert joined.joined, "the finding joins the running incident"
        state = await wait_for(handle, lambda s: bool(s.drifts), timeout=5)
        assert _key_status(workload) == "Inactive", "re-applied within seconds of the finding"

        [drift] = state.drifts
        assert drift.step == "deactivate_access_key" and drift.trigger == "finding" and drift.found
        assert drift.reapplied and drift.holds_after and drift.reapply_error is None
        # moto has no CloudTrail LookupEvents: nobody is named, and the drift says why.
        assert drift.changed_by == [] and drift.changed_by_unknown
        assert state.escalations == [drift.at] and state.status == Status.ESCALATED
        assert any("drift" in t.event and "deactivate_access_key" in t.event for t in state.timeline)
        escalations = await _escalations(workload, "containment of")
        assert any(m["resource_id"] == state.resource_id for m in escalations)

        await handle.signal("reject", {"by": "bob", "reason": "test over"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert await _guarded(handle) == [], "containment undone: nothing is guarded any more"


def _update_access_key_record(workload, actor: str) -> dict:
    """The CloudTrail record of someone turning the contained key back on."""
    return {
        "eventVersion": "1.09",
        "eventID": "5d6f6c1e-2c2a-4c55-9a51-0c1d2e3f4a5b",
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "iam.amazonaws.com",
        "eventName": "UpdateAccessKey",
        "awsRegion": "us-east-1",
        "recipientAccountId": workload.account_id,
        "userIdentity": {"type": "IAMUser", "arn": actor, "accountId": workload.account_id},
        "requestParameters": {
            "userName": workload.iam_user,
            "accessKeyId": workload.access_key_id,
            "status": "Active",
        },
    }


async def test_a_tamper_call_reaches_the_guarding_incident_and_names_who_undid_containment(dev_env, workload):
    client = dev_env.client
    mallory = f"arn:aws:iam::{workload.account_id}:user/mallory"
    async with running_worker(client) as settings:
        _, handle = await _open_user_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        _reactivate_key(workload)
        tampered = tamper_finding(_update_access_key_record(workload, mallory))
        for _ in range(50):  # the dev server's visibility sees the incident's IrflowGuarded a moment after it is set
            delivered = await deliver_tamper(client, tampered, origin="test")
            if delivered.reached:
                break
            await asyncio.sleep(0.1)
        assert delivered.reached == (handle.id,), "found by what it guards (IrflowGuarded), not by its key"

        state = await wait_for(handle, lambda s: bool(s.drifts), timeout=5)
        assert _key_status(workload) == "Inactive"
        [drift] = state.drifts
        assert drift.trigger == "finding" and drift.step == "deactivate_access_key" and drift.holds_after
        assert [c.principal for c in drift.changed_by] == [mallory], "the tamper finding names who did it"
        assert drift.changed_by[0].event_name == "UpdateAccessKey"
        await handle.signal("reject", {"by": "bob", "reason": "test over"})
        await handle.result()


async def test_the_timer_isolates_again_an_instance_put_back_into_its_groups(skipping_env, workload):
    client = skipping_env.client
    ec2 = boto3.client("ec2", region_name=workload.region)
    async with running_worker(client, **NO_MEMORY) as settings:
        _, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        quarantine = quarantine_groups(workload)[0]["GroupId"]
        assert all(groups == [quarantine] for groups in observed_instance(workload)["enis"].values())
        for eni in state.context.network_interfaces:  # from outside: back into the groups it had
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni.network_interface_id, Groups=eni.group_ids)
        assert all(groups != [quarantine] for groups in observed_instance(workload)["enis"].values())

        await skipping_env.sleep(timedelta(seconds=settings.verify_containment_seconds + 1))
        state = await wait_for(handle, lambda s: any(d.holds_after for d in s.drifts), timeout=60)
        assert all(groups == [quarantine] for groups in observed_instance(workload)["enis"].values())
        assert {(d.step, d.trigger) for d in state.drifts} == {("isolate_network", "timer")}
        assert state.finding_deliveries == 1, "no finding came: the timer found it"
        assert state.escalations and state.status == Status.ESCALATED

        await handle.signal("reject", {"by": "bob", "reason": "test over"})
        await handle.result()


async def test_a_timer_check_where_everything_holds_changes_nothing(skipping_env, workload):
    client = skipping_env.client
    async with running_worker(client) as settings:
        _, handle = await _open_user_incident(client, settings, workload)
        awaiting = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        contained = observed_user(workload)
        events = await _settled_history_length(handle)

        await skipping_env.sleep(timedelta(seconds=settings.verify_containment_seconds + 1))
        state = await wait_for(handle, lambda s: s.containment_checks >= 1, timeout=60)
        added = len((await handle.fetch_history()).events) - events
        assert added <= 15, f"a passing check adds a handful of events to history, not {added}"
        assert state.last_verified_at is not None and state.last_verified_at > awaiting.contained_at
        assert state.drifts == [] and state.escalations == [] and state.status == Status.AWAITING_DECISION
        # (a notification queued before may finish meanwhile: it is no containment step)
        steps = [a.name for a in state.actions if a.name != "publish_notification"]
        assert steps == [a.name for a in awaiting.actions if a.name != "publish_notification"], "nothing re-applied"
        assert len(state.timeline) == len(awaiting.timeline), "a passing check writes no note"
        assert observed_user(workload) == contained
        assert not [m for m in notifications(workload) if m["topic"] == workload.escalation_topic_arn]

        await handle.signal("reject", {"by": "bob", "reason": "test over"})
        await handle.result()


async def test_what_an_instance_incident_guards_is_published_and_cleared_when_it_ends(dev_env, workload):
    client = dev_env.client
    async with running_worker(client, **NO_MEMORY) as settings:
        _, handle = await open_incident(client, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        quarantine = quarantine_groups(workload)[0]["GroupId"]
        account, enis = workload.account_id, [e.network_interface_id for e in state.context.network_interfaces]
        assert sorted(await _guarded(handle)) == sorted(
            guard_handles(account, kinds.INSTANCE, [workload.instance_id])
            + guard_handles(account, kinds.NETWORK_INTERFACE, enis)
            + guard_handles(account, kinds.SECURITY_GROUP, [quarantine])
            + guard_handles(account, kinds.IAM_ROLE, state.context.instance_profile.role_names)
        )
        await handle.signal("approve", {"by": "alice", "comment": "confirmed", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    assert await _guarded(handle) == [], "a finished incident guards nothing"


def _held_check(started: threading.Event, proceed: threading.Event) -> list:
    """The access key's postcondition check, held until the test lets it go (a check in flight)."""
    check = POSTCONDITIONS["deactivate_access_key"]
    name = activity._Definition.must_from_callable(check).name

    def stand_in(step):
        started.set()
        assert proceed.wait(30), "the test never let the check go"
        return check(step)

    others = [a for a in all_activities() if activity._Definition.must_from_callable(a).name != name]
    return [*others, activity.defn(name=name)(_takes_what(check, stand_in))]


async def test_a_reject_while_a_check_is_in_flight_waits_for_it_then_restores_exactly(dev_env, workload):
    before = observed_user(workload)
    started, proceed = threading.Event(), threading.Event()
    client = dev_env.client
    async with running_worker(client, activities=_held_check(started, proceed)) as settings:
        _, handle = await _open_user_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        _reactivate_key(workload)
        await _open_user_incident(client, settings, workload, finding_id="c0ffee0123456789abcdef0123456789")
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 30), "the finding's check ran"

        await handle.signal("reject", {"by": "bob", "reason": "the deploy bot after all"})
        await wait_for(handle, lambda s: any(d.kind == "reject" for d in s.decisions))
        proceed.set()  # the check finds the drift and re-applies: before any undo, never during one
        final = await handle.result()

    assert final.status == Status.ROLLED_BACK
    assert observed_user(workload) == before, "restored exactly: the guard did not contain it again"
    [drift] = final.drifts
    assert drift.reapplied
    reapplied = [a for a in final.actions if a.name == "deactivate_access_key"][-1]
    assert reapplied.finished_at <= min(c.started_at for c in final.compensations)
    assert any(c.name == "restore_access_key_status" and c.status == ActionStatus.UNDONE for c in final.compensations)


# --- what an incident guards, for every kind of resource (no server) ---


class _Applied(Playbook):
    def __init__(self, *arguments) -> None:
        self.applied = [(TAG_STEP, argument) for argument in arguments]


def test_guarded_handles_name_what_each_playbook_contained():
    def target(model, **fields):
        return model(incident_id="i", account_id=ACCOUNT, region="us-east-1", **fields)

    eni = NetworkInterfaceState(network_interface_id="eni-1", vpc_id="vpc-1", group_ids=["sg-old"])
    profile = InstanceProfileState(
        association_id="a-1", profile_arn="arn:aws:iam::1:instance-profile/web", profile_name="web", role_names=["web"]
    )
    instance = InstanceContext(
        instance_id="i-1", account_id=ACCOUNT, region="us-east-1", state="running", network_interfaces=[eni],
        instance_profile=profile, captured_at=NOW,
    )  # fmt: skip
    role = IamRoleContext(role_name="app", role_arn="arn:aws:iam::1:role/app", role_id="AROA1", captured_at=NOW)
    playbook = _Applied(
        Ec2StepInput(target=target(Ec2Target, instance_id="i-1"), prior=instance),
        IamRoleStepInput(target=target(IamRoleTarget), prior=role),
        BucketStepInput.model_construct(target=target(BucketTarget, bucket="b1")),
        LambdaStepInput.model_construct(
            target=target(LambdaTarget, function_name="fn"), prior=LambdaContext.model_construct(role_name="fn-role")
        ),
        DbStepInput.model_construct(target=target(DbTarget, db_instance_identifier="db1")),
        "a tag request: guards nothing by itself",
    )
    isolated = ActionRecord(
        name="isolate_network",
        phase=Phase.CONTAINMENT,
        status=ActionStatus.DONE,
        started_at=NOW,
        finished_at=NOW,
        result={"changed": True, "quarantine_groups": {"vpc-1": "sg-q"}},
    )
    failed = isolated.model_copy(update={"status": ActionStatus.FAILED, "result": {"quarantine_groups": {"v": "sg-x"}}})
    assert guarded_handles(playbook, [isolated, failed]) == [
        f"{ACCOUNT}:instance:i-1",
        f"{ACCOUNT}:eni:eni-1",
        f"{ACCOUNT}:security-group:sg-q",
        *guard_handles(ACCOUNT, kinds.IAM_ROLE, ["web"]),  # the revocation on the roles behind its profile
        *guard_handles(ACCOUNT, kinds.IAM_ROLE, ["app"]),
        f"{ACCOUNT}:bucket:b1",
        f"{ACCOUNT}:function:fn",
        *guard_handles(ACCOUNT, kinds.IAM_ROLE, ["fn-role"]),  # the revocation on its execution role
        f"{ACCOUNT}:db-instance:db1",
    ]
    assert guarded_handles(_Applied(), [isolated]) == []


def test_the_timer_interval_comes_from_the_settings():
    assert IrflowSettings().response_policy().verify_containment == timedelta(seconds=300)
    assert IrflowSettings(verify_containment_seconds=0).response_policy().verify_containment is None
    assert IncidentState.model_fields["drifts"].default_factory() == []


def test_only_a_tamper_finding_names_who_made_the_call():
    workload = type("W", (), {"account_id": ACCOUNT, "iam_user": "ci", "access_key_id": "AKIAEXAMPLEKEY000001"})
    tampered = tamper_finding(_update_access_key_record(workload, "arn:aws:iam::123456789012:user/mallory")).finding
    change = tamper_change(tampered)
    assert change.principal == "arn:aws:iam::123456789012:user/mallory" and change.event_name == "UpdateAccessKey"
    guardduty = parse_guardduty(sample_access_key_finding("ci", "AKIAEXAMPLEKEY000001", ACCOUNT)).finding
    assert tamper_change(guardduty) is None
    assert tamper_change(tampered.model_copy(update={"actor_arn": None})) is None
