"""Containment that is verified, not assumed.

From the moment an incident has contained its resource until it undoes containment or ends, its guard re-checks
every applied step's read-only postcondition (`activities.postconditions.POSTCONDITIONS`): whenever a new finding
joins the incident, and every `ResponsePolicy.verify_containment`. A step found undone (someone reactivated the
key, put the instance back into its groups) is drift: the guard re-applies the step, checks it again, names who
changed it when it can (the tamper finding's actor, else CloudTrail), records it (`IncidentState.drifts`) and
escalates. A re-apply that fails is recorded and escalated, never raised.

The guard also says what the incident guards (`guarded_handles`, published as the IrflowGuarded search attribute),
so a CloudTrail record of a change to one of those things reaches the incident.

One check at a time (the steps of one check side by side); `stop` waits for the one in flight, so nothing is
re-applied while the incident undoes its containment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.changes import changes_to
    from activities.postconditions import POSTCONDITIONS
    from activities.report_wording import drift_text
    from irflow.models import guarded as kinds
    from irflow.models.carry_over import CarriedGuard
    from irflow.models.ec2 import Ec2StepInput
    from irflow.models.finding import TAMPER_TYPE_PREFIX, Finding
    from irflow.models.guarded import guard_handles
    from irflow.models.iam import IamRoleStepInput, IamUserStepInput
    from irflow.models.incident import ActionRecord, ActionStatus, DriftRecord, Status
    from irflow.models.lambda_function import LambdaStepInput
    from irflow.models.postconditions import Change, ChangeQuery, Postcondition
    from irflow.models.rds import DbStepInput
    from irflow.models.s3 import BucketStepInput

from workflows.activity_options import LOCAL, QUICK, execute
from workflows.notifications import Notifier
from workflows.playbook import ContainmentStep, Playbook
from workflows.record import IncidentRecord, error_text

Trigger = Literal["finding", "timer"]
# A check only reads, and quickly: a local activity (one marker in history, not three events and a workflow task
# per step), so a timer check where everything holds adds a handful of events however many steps it checks.
CHECK = LOCAL
# CloudTrail's LookupEvents is slow and throttled, and best-effort: through the server like any quick step.
LOOKUP = QUICK
KEPT_JOINED = 20  # tamper findings not yet checked, carried to the next run


# --- what the incident guards ---


def _done(actions: Sequence[ActionRecord], name: str) -> list[dict[str, Any]]:
    return [a.result for a in actions if a.name == name and a.status == ActionStatus.DONE]


def guarded_handles(playbook: Playbook, actions: Sequence[ActionRecord]) -> list[str]:
    """Handles (`irflow.models.guarded`) of everything the contained incident guards, from the steps it took (and
    their recorded results: the quarantine groups, the keys deactivated)."""
    quarantine = [
        str(g) for r in _done(actions, "isolate_network") for g in (r.get("quarantine_groups") or {}).values()
    ]
    keys = [str(r["access_key_id"]) for r in _done(actions, "deactivate_access_key") if r.get("access_key_id")]
    handles: list[str] = []
    for _, argument in playbook.applied:
        match argument:
            case Ec2StepInput(target=t, prior=prior):
                enis = [e.network_interface_id for e in prior.network_interfaces]
                handles += guard_handles(t.account_id, kinds.INSTANCE, [t.instance_id])
                handles += guard_handles(t.account_id, kinds.NETWORK_INTERFACE, enis)
                handles += guard_handles(t.account_id, kinds.SECURITY_GROUP, quarantine)
                # The roles behind its profile carry the session revocation (revoke_role_sessions).
                roles = prior.instance_profile.role_names if prior.instance_profile else []
                handles += guard_handles(t.account_id, kinds.IAM_ROLE, roles)
            case IamUserStepInput(target=t, prior=prior):
                handles += guard_handles(t.account_id, kinds.IAM_USER, [prior.user_name])
                handles += guard_handles(t.account_id, kinds.ACCESS_KEY, keys)
            case IamRoleStepInput(target=t, prior=prior):
                handles += guard_handles(t.account_id, kinds.IAM_ROLE, [prior.role_name])
            case BucketStepInput(target=t):
                handles += guard_handles(t.account_id, kinds.BUCKET, [t.bucket])
            case LambdaStepInput(target=t, prior=prior):
                handles += guard_handles(t.account_id, kinds.FUNCTION, [t.function_name])
                # Its execution role carries the session revocation (revoke_function_role_sessions).
                handles += guard_handles(t.account_id, kinds.IAM_ROLE, [prior.role_name])
            case DbStepInput(target=t):
                handles += guard_handles(t.account_id, kinds.DB_INSTANCE, [t.db_instance_identifier])
    return list(dict.fromkeys(handles))


def tamper_change(finding: Finding) -> Change | None:
    """Who a tamper finding (`irflow.detection.tamper`: a CloudTrail call by someone other than irflow to something
    an incident guards) says made the call; None for any other finding, or one that names nobody."""
    if not finding.is_tamper or not finding.actor_arn:
        return None
    return Change(
        event_name=finding.type.removeprefix(TAMPER_TYPE_PREFIX),
        event_time=finding.last_seen or finding.updated_at,
        principal=finding.actor_arn,
        resource=finding.resource.resource_id or "",
    )


# --- the guard ---


class ContainmentGuard:
    def __init__(self, record: IncidentRecord, notifier: Notifier) -> None:
        self.record = record
        self.notifier = notifier
        self.playbook: Playbook | None = None
        self._watching: asyncio.Future | None = None
        self._stopping = False
        self._paused = False  # the incident is about to continue as new: no check starts
        self._checking = False
        self._restored = False  # a new run of a contained incident, before its guard starts again
        self._joined: list[Finding] = []  # findings that joined since the last check
        self._unrepaired: set[str] = set()  # steps escalated and still not holding: not escalated again
        self._failing: set[str] = set()  # steps whose check itself fails: noted once
        self._gone: set[str] = set()

    @property
    def running(self) -> bool:
        return self._watching is not None and not self._stopping

    def start(self, playbook: Playbook) -> None:
        """Containment is done: publish what it guards, and watch it."""
        self.playbook = playbook
        self.record.guarded = guarded_handles(playbook, self.record.state.actions)
        self.record.publish()
        if any(step.name in POSTCONDITIONS for step, _ in playbook.applied):
            self._watching = asyncio.ensure_future(self._watch())

    def finding_joined(self, finding: Finding) -> None:
        """A new finding about the resource: check at once (findings arriving meanwhile share one check)."""
        if self.running or self._restored:
            self._joined.append(finding)

    async def stop(self) -> None:
        """No check and no re-apply after this returns (the one in flight has finished); nothing is guarded."""
        self._stopping = True
        if self._watching is not None:
            await self._watching
        if self.record.guarded:
            self.record.guarded = []
            self.record.publish()  # IrflowGuarded says so at once, not at the next change of status

    async def pause(self) -> None:
        """No new check starts (findings joining meanwhile wait for one); the check in flight has finished."""
        self._paused = True
        await workflow.wait_condition(lambda: not self._checking)

    def resume(self) -> None:
        self._paused = False

    @property
    def checking(self) -> bool:
        return self._checking

    def carried(self) -> CarriedGuard:
        # A storm's findings need no check each: the latest, and the tamper findings that name who undid what.
        tamper = [f for f in self._joined if f.is_tamper][-KEPT_JOINED:]
        return CarriedGuard(
            joined=tamper + [f for f in self._joined[-1:] if not f.is_tamper],
            unrepaired=sorted(self._unrepaired),
            failing=sorted(self._failing),
            gone=sorted(self._gone),
        )

    def restore(self, carried: CarriedGuard) -> None:
        """What the previous run's guard knew: the findings it had not checked against yet are checked first."""
        self._joined = [*carried.joined, *self._joined]
        self._unrepaired, self._failing = set(carried.unrepaired), set(carried.failing)
        self._gone = set(carried.gone)
        self._restored = True

    async def _watch(self) -> None:
        every = self.record.policy.verify_containment
        while not self._stopping:
            try:
                await workflow.wait_condition(lambda: bool(self._joined) or self._stopping, timeout=every)
            except TimeoutError:
                if not self._paused:  # the next run checks at once
                    await self._checked("timer")
                continue
            if self._joined and not self._stopping:
                if self._paused:
                    await workflow.wait_condition(lambda: not self._paused or self._stopping)
                    if self._stopping:
                        break
                joined, self._joined = self._joined, []
                await self._checked("finding", joined)

    async def _checked(self, trigger: Trigger, joined: Sequence[Finding] = ()) -> None:
        self._checking = True
        try:
            await self.check(trigger, joined)
        finally:
            self._checking = False

    async def check(self, trigger: Trigger, joined: Sequence[Finding] = ()) -> list[DriftRecord]:
        """Every applied step's postcondition, side by side; each step found undone is repaired, in step order."""
        assert self.playbook is not None
        state = self.record.state
        steps = [(s, a) for s, a in self.playbook.applied if s.name in POSTCONDITIONS]
        found = await asyncio.gather(*(self._postcondition(s, a) for s, a in steps))
        state.containment_checks += 1
        drifts = []
        for (step, argument), post in zip(steps, found, strict=True):
            if post is None:
                continue
            self._note_gone(post)
            if post.holds:
                self._unrepaired.discard(step.name)
            else:
                drifts.append(await self._repair(step, argument, post, trigger, joined))
        if all(post is not None and post.holds for post in found):
            state.last_verified_at = workflow.now()
        return drifts

    async def _postcondition(self, step: ContainmentStep, argument: Any) -> Postcondition | None:
        try:
            post = await execute(POSTCONDITIONS[step.name], argument, CHECK)
        except ActivityError as error:
            if step.name not in self._failing:
                self._failing.add(step.name)
                self.record.note(f"containment check of {step.name} failed: {error_text(error)}")
            return None
        self._failing.discard(step.name)
        return post

    def _note_gone(self, post: Postcondition) -> None:
        gone = [r for r in post.gone if r not in self._gone]
        if gone:
            self._gone.update(gone)
            self.record.note(f"containment check of {post.step}: no longer exists: {', '.join(gone)}")

    async def _repair(
        self, step: ContainmentStep, argument: Any, post: Postcondition, trigger: Trigger, joined: Sequence[Finding]
    ) -> DriftRecord:
        """Re-apply the step and check again, while asking who changed it."""
        assert self.playbook is not None
        at = workflow.now()
        self.record.note(f"containment drifted ({trigger}): {step.name}: {post.found}; re-applying")
        asking = asyncio.ensure_future(self._who_changed(post, joined))
        reapplied, reapply_error = False, None
        try:
            await self.playbook.reapply(step, argument)
            reapplied = True
        except ActivityError as error:
            reapply_error = error_text(error)
        after = await self._postcondition(step, argument)
        changed_by, unknown = await asking
        drift = DriftRecord(
            at=at,
            step=step.name,
            found=post.found,
            trigger=trigger,
            changed_by=changed_by,
            changed_by_unknown=unknown,
            reapplied=reapplied,
            reapply_error=reapply_error,
            holds_after=bool(after and after.holds),
            found_after=after.found if after else "the check after the re-apply failed",
        )
        self.record.state.drifts.append(drift)
        self._escalate(drift)
        return drift

    async def _who_changed(self, post: Postcondition, joined: Sequence[Finding]) -> tuple[list[Change], str]:
        named = [change for finding in joined if (change := tamper_change(finding)) is not None]
        if named:
            return named, ""
        record = self.record
        query = ChangeQuery(
            account_id=record.finding.account_id,
            region=record.finding.region,
            resources=post.resources,
            since=record.state.contained_at or record.state.received_at,
            own_principals=record.policy.own_principals,
        )
        try:
            lookup = await workflow.execute_activity(changes_to, query, **LOOKUP)
        except ActivityError as error:
            return [], f"the CloudTrail lookup failed: {error_text(error)}"
        if lookup.changes:
            return lookup.changes, ""
        return [], lookup.reason or "CloudTrail names nobody but irflow"

    def _escalate(self, drift: DriftRecord) -> None:
        state = self.record.state
        text = drift_text(drift)
        self.record.note(f"drift: {text}")
        if not drift.holds_after and drift.step in self._unrepaired:
            drift.escalated = False  # escalated already, and nothing changed since
            return
        if drift.holds_after:
            self._unrepaired.discard(drift.step)
        else:
            self._unrepaired.add(drift.step)
        state.escalations.append(drift.at)
        if not state.status.is_final:
            state.status = Status.ESCALATED
        self.record.publish()
        self.notifier.notify("escalation", f"irflow: ESCALATION, containment of {state.resource_id} was undone", text)
