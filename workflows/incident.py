"""IncidentWorkflow: one incident, one workflow, walking the NIST SP 800-61 phases.

detection & analysis → [approval if policy asks] → containment (saga) → evidence → analyst decision →
eradication & recovery → post-incident report. This module is the lifecycle only: the resource-specific
work is a playbook's, the record is `workflows.record`, decisions are `workflows.decisions`, notifications
`workflows.notifications`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.governor import reserve_automatic_containment
    from activities.report import write_report
    from irflow.models.errors import ACCESS_DENIED, NOT_FOUND
    from irflow.models.governor import ReservationRequest
    from irflow.models.identifiers import incident_id_refusal
    from irflow.models.incident import (
        INCIDENT_WORKFLOW,
        ActionStatus,
        DecisionKind,
        FindingDelivery,
        IncidentInput,
        IncidentState,
        Phase,
        Status,
    )

from workflows.activity_options import LOCAL, QUICK, UNDO, activity_name
from workflows.carry_over import CarryOver
from workflows.closing import SourceFindings
from workflows.decisions import DecisionDesk, DecisionDoors
from workflows.ec2_playbook import Ec2Playbook
from workflows.guard import ContainmentGuard
from workflows.iam_role_playbook import IamRolePlaybook
from workflows.iam_user_playbook import IamUserPlaybook
from workflows.lambda_playbook import LambdaPlaybook
from workflows.notifications import Notifier
from workflows.playbook import ContainmentPlan, Playbook
from workflows.rds_playbook import RdsPlaybook
from workflows.record import IncidentRecord, error_text, error_type, summarise
from workflows.s3_bucket_playbook import S3BucketPlaybook
from workflows.saga import Undo
from workflows.sequence_playbook import SequencePlaybook
from workflows.triage_playbook import TriagePlaybook

# Steps added while incidents may be running (docs/operations.md, "Upgrading with incidents running"): an incident
# takes each only where its history says it did, or where it reaches it on a worker that knows it (`workflow.patched`),
# so a history recorded before the step existed replays as it ran.
NOTIFY_CONTAINED = "issue-15-notify-contained"  # Security Hub: NOTIFIED once contained
CLOSE_THE_LOOP = "issue-15-close-the-loop"  # GuardDuty and Security Hub told the verdict, before the report
BEFORE_REPORT = "issue-15-before-report"  # the playbook's last look (an attack sequence reads its children)
JOINED_FINDING = "issue-15-joined-finding"  # the playbook told of a new finding (a sequence's new resources)
UNDO_FAILURES = "issue-16-undo-failures"  # an undo that failed is escalated and named in the outcome
# And "issue-16-continue-as-new" (workflows.carry_over): a new run, the state carried, while it waits for a decision.

PLAYBOOKS: dict[str, type[Playbook]] = {
    p.name: p
    for p in (
        Ec2Playbook,
        IamUserPlaybook,
        IamRolePlaybook,
        LambdaPlaybook,
        RdsPlaybook,
        S3BucketPlaybook,
        SequencePlaybook,
        TriagePlaybook,
    )
}


@workflow.defn(name=INCIDENT_WORKFLOW)
class IncidentWorkflow(DecisionDoors):
    @workflow.init
    def __init__(self, request: IncidentInput) -> None:
        self.request = request
        self.record = IncidentRecord(request)
        self.state = self.record.state
        self.notifier = Notifier(self.record)
        self.desk = DecisionDesk(self.record, self.notifier, self.enter)
        self.guard = ContainmentGuard(self.record, self.notifier)
        self.source_findings = SourceFindings(self.record)
        self.not_undone = ""  # the undos that failed, named: said in the outcome
        self.desk.carry = self.carry = CarryOver(
            request, self.record, self.desk, self.guard, self.notifier, self.source_findings
        )
        if request.carried is not None:  # continued as new: restored before the new run's first signal
            self.playbook = self.carry.playbook = PLAYBOOKS[request.playbook](self.record)
            self.carry.restore(request.carried, self.playbook)
            self.state = self.record.state

    @workflow.query
    def current_state(self) -> IncidentState:
        return self.state

    @workflow.signal
    def add_finding(self, delivery: FindingDelivery) -> None:
        """A finding (new, repeated or re-published) about the same resource joins this incident; a new one has a
        contained incident check its containment at once (a redelivery or a repeat tells nothing new)."""
        self.source_findings.keep(delivery.finding, delivery.raw_packed, delivery.delivery_id)
        if self.record.absorb(delivery):
            self.carry.bound_findings()
            self.guard.finding_joined(delivery.finding)
            playbook = getattr(self, "playbook", None)  # None before the run begins: its analysis sees every finding
            if playbook is not None and workflow.patched(JOINED_FINDING):
                playbook.finding_joined(delivery)

    # --- the lifecycle ---

    @workflow.run
    async def run(self, request: IncidentInput) -> IncidentState:
        if request.carried is not None:
            self.record.note(f"continued as new (run {self.state.findings_summary.runs})")
            self.record.publish()
            return await self._resumed(self.playbook, request.carried.state.pending_decision.kind)
        playbook = self.playbook = self.carry.playbook = PLAYBOOKS[request.playbook](self.record)
        self.record.note(f"incident opened: {request.finding.type} on {self.state.resource_id}")
        self.record.publish()
        return await self._cancellable(self._lifecycle(playbook))

    async def _resumed(self, playbook: Playbook, stage: str) -> IncidentState:
        """Where the run before this one continued as new: waiting for the decision it asked for."""
        if stage == "triage":
            return await self._cancellable(self._triage_decision())
        if stage == "containment":
            return await self._cancellable(self._contain_if_approved(playbook, None))
        self.guard.start(playbook)
        return await self._cancellable(self._decide(playbook))

    async def _cancellable(self, lifecycle) -> IncidentState:
        try:
            return await lifecycle
        except asyncio.CancelledError:
            # A cancel is not a verdict: containment stays in place; only an analyst's reject undoes it.
            self.record.note("incident cancelled by request; containment (if any) left in place")
            await asyncio.shield(asyncio.ensure_future(self._finish(Status.FAILED, "cancelled by request")))
            raise

    async def _lifecycle(self, playbook: Playbook) -> IncidentState:
        refusal = incident_id_refusal(self.state.incident_id)
        if refusal:  # its id would reach S3 keys, tags, policy names: nothing runs for it
            raise ApplicationError(f"incident refused: {refusal}", type="InvalidIncidentId", non_retryable=True)
        await self.record.load_policy()
        self.enter(Phase.DETECTION, f"{self.state.finding.type} on {self.state.resource_id}")
        try:
            plan = await playbook.analyse()
        except ActivityError as error:
            return await self._finish(Status.FAILED, f"detection & analysis failed: {error_text(error)}", fail=True)
        self.state.severity = plan.severity
        if playbook.contains:
            plan = await self._guardrails(plan)
        self.state.containment_requires_approval = plan.requires_approval
        self.state.plan_reasons = plan.reasons
        self.record.publish()
        if not playbook.contains:
            return await self._triage(playbook)
        return await self._contain_if_approved(playbook, plan)

    async def _contain_if_approved(self, playbook: Playbook, plan: ContainmentPlan | None) -> IncidentState:
        """Containment, asked first when the plan says so (no plan: the question was asked by the run before)."""
        if plan is None or plan.requires_approval:
            decision = await self.desk.ask("containment", f"Contain {self.state.resource_id}?", plan)
            if decision.kind == DecisionKind.REJECT:
                return await self._finish(Status.ROLLED_BACK, f"rejected before containment by {decision.by}")

        self.enter(Phase.CONTAINMENT)
        try:
            await playbook.contain()
        except ActivityError as error:
            # The resource vanished, or AWS refused a call (a permission to grant): nobody chose this rollback.
            failed = error_type(error) in (NOT_FOUND, ACCESS_DENIED)
            reason = f"containment failed: {error_text(error)}"
            await self._compensate(reason)
            self.notifier.notify("escalation", f"irflow: containment FAILED for {self.state.resource_id}", reason)
            return await self._finish(Status.FAILED if failed else Status.ROLLED_BACK, reason, fail=True)
        self.state.contained_at = workflow.now()
        self.record.note("contained")
        self.guard.start(playbook)  # verified from now on, not assumed
        if workflow.patched(NOTIFY_CONTAINED):
            self.source_findings.contained()  # Security Hub: NOTIFIED

        self.enter(Phase.EVIDENCE, "containment complete; collecting evidence")
        await asyncio.gather(playbook.collect_evidence(), self.record.store_raw_findings())
        await self.record.write_manifest()
        return await self._decide(playbook)

    async def _decide(self, playbook: Playbook) -> IncidentState:
        """Contained and guarded: the analyst's verdict, and what follows from it."""
        decision = await self.desk.ask(
            "eradication",
            f"{self.state.resource_id} is contained. Approve eradication, reject as a false positive, or "
            "release it (real, but recovered: containment is lifted)?",
        )
        await self.guard.stop()  # whatever follows (undo, eradication) meets no re-apply
        if decision.kind == DecisionKind.REJECT:
            await self._compensate(f"rejected as a false positive by {decision.by}")
            return await self._finish(Status.ROLLED_BACK, None)
        if decision.kind == DecisionKind.RELEASE:
            self.enter(Phase.ERADICATION, f"released by {decision.by}: containment is lifted")
            await self._compensate(f"released by {decision.by} after recovery")
            self.state.recovered_at = workflow.now()
            return await self._finish(Status.RESOLVED, f"released after recovery by {decision.by}")

        self.enter(Phase.ERADICATION)
        choice = decision.eradication or self.record.policy.default_eradication
        self.state.eradication = choice
        try:
            await playbook.eradicate(choice)
        except ActivityError as error:
            reason = f"eradication ({choice}) failed: {error_text(error)}; the resource stays contained"
            self.notifier.notify("escalation", f"irflow: eradication FAILED for {self.state.resource_id}", reason)
            return await self._finish(Status.FAILED, reason, fail=True)
        self.state.recovered_at = workflow.now()
        return await self._finish(Status.RESOLVED, None)

    async def _guardrails(self, plan: ContainmentPlan) -> ContainmentPlan:
        """What irflow must not do unasked, beyond what the plan says (a protected subject is the plan's:
        `workflows.policy.protection`): contain beyond the blast-radius cap. The plan as it then stands."""
        if plan.requires_approval:
            return plan  # an analyst decides anyway: nothing automatic to count
        policy = self.record.policy
        request = ReservationRequest(
            incident_id=self.state.incident_id,
            account_id=self.state.finding.account_id,
            per_account_limit=policy.max_auto_containments_per_hour,
            fleet_limit=policy.max_auto_containments_fleet_per_hour,
        )
        try:
            # Local: it stands between the finding and isolation, and a round trip through the server costs more
            # than the reservation itself (an update of the governor workflow).
            reservation = await self.record.act(reserve_automatic_containment, request, LOCAL)
            refusal = None if reservation.granted else f"blast-radius cap reached: {reservation.reason}"
        except ActivityError as error:
            refusal = f"the blast-radius governor did not answer ({error_text(error)})"
        if not refusal:
            return plan
        plan = replace(plan, requires_approval=True, reasons=[*plan.reasons, f"{refusal}: containment waits"])
        self.record.note(refusal)
        self.notifier.notify(
            "team",
            f"irflow: automatic containment held for {self.state.resource_id}",
            f"{refusal}. {self.state.finding.type} on {self.state.resource_id} waits for an analyst.",
        )
        return plan

    async def _triage(self, playbook: Playbook) -> IncidentState:
        """No automated containment: evidence, a notification, and an analyst's call."""
        self.record.note("triage only: no automated containment for this resource")
        self.enter(Phase.EVIDENCE, "triage only: collecting evidence, nothing is changed")
        await asyncio.gather(playbook.collect_evidence(), self.record.store_raw_findings())
        await self.record.write_manifest()
        return await self._triage_decision()

    async def _triage_decision(self) -> IncidentState:
        decision = await self.desk.ask(
            "triage",
            f"irflow does not contain {self.state.finding.resource.resource_type} {self.state.resource_id} "
            "automatically. Handle it, then approve to close, or reject as a false positive.",
        )
        if decision.kind == DecisionKind.REJECT:
            return await self._finish(Status.ROLLED_BACK, None)
        return await self._finish(Status.RESOLVED, None)

    def enter(self, phase: Phase, message: str = "", subject: str | None = None) -> None:
        """A phase change: recorded, published to the UI and search attributes, and one SNS message."""
        self.state.phase = phase
        self.record.note(f"phase: {phase}" + (f" — {message}" if message else ""))
        self.record.publish()
        self.notifier.notify(
            "team", subject or f"irflow: {self.state.resource_id} → {phase}", message or f"phase {phase}"
        )

    # --- compensation and closing ---

    async def _compensate(self, reason: str) -> None:
        await self.guard.stop()
        self.record.note(f"compensating ({len(self.record.saga)} undo(s)): {reason}")
        done = len(self.state.compensations)
        await self.record.saga.compensate(self._run_undo)
        failed = [c for c in self.state.compensations[done:] if c.status == ActionStatus.UNDO_FAILED]
        if failed and workflow.patched(UNDO_FAILURES):  # what is left in place needs a person
            self.not_undone = "; ".join(f"{c.name} (undoes {c.result['undoes']}): {c.error}" for c in failed)
            subject = f"irflow: undo FAILED for {self.state.resource_id}"
            self.notifier.notify("escalation", subject, f"{reason}; not undone: {self.not_undone}")
        self.record.publish()

    async def _run_undo(self, undo: Undo) -> None:
        started = workflow.now()
        handle = workflow.start_activity(undo.activity, undo.argument, **UNDO)
        status, result, error = ActionStatus.UNDONE, {}, None
        while True:
            try:
                result = summarise(await asyncio.shield(handle))
                break
            except asyncio.CancelledError:
                continue  # an undo half-done is worse than a late one: finish it
            except ActivityError as failure:
                error = error_text(failure)
                status = ActionStatus.SKIPPED if error_type(failure) == NOT_FOUND else ActionStatus.UNDO_FAILED
                break
        name = activity_name(undo.activity)
        self.state.compensations.append(
            self.record.action(name, status, started, result={"undoes": undo.step, **result}, error=error)
        )
        self.record.note(f"undo {undo.step} via {name}: {status}")

    async def _finish(self, status: Status, reason: str | None, fail: bool = False) -> IncidentState:
        await self.guard.stop()  # a finished incident guards nothing
        self.state.status = status
        left = f"not undone: {self.not_undone}" if self.not_undone else None
        self.state.failure_reason = "; ".join(r for r in (reason, left) if r) or None
        self.state.pending_decision = None
        # Closed when the outcome is settled, so the report stored under Object Lock carries the time too.
        self.state.closed_at = workflow.now()
        self.enter(Phase.REPORT, f"incident {status}" + (f": {reason}" if reason else ""))
        await self.record.background_done()  # snapshot digests and forensic copies, for the report
        if workflow.patched(BEFORE_REPORT):
            await self.playbook.before_report()
        # The report shows them: the raw findings stored, the notifications sent, the findings told the verdict.
        closing = [self.source_findings.closed()] if workflow.patched(CLOSE_THE_LOOP) else []
        await asyncio.gather(self.record.store_raw_findings(), self.notifier.sent(), *closing)
        reports = await self.record.try_act(write_report, self.state, QUICK)
        if reports:
            self.record.add_evidence(*reports)
            self.state.report_keys = [r.key for r in reports]
        await self.record.write_manifest()
        self.enter(Phase.DONE, f"incident {status}" + (f": {reason}" if reason else ""))
        await self.notifier.sent()  # every queued notification is out before the incident ends
        if fail:
            raise ApplicationError(reason or str(status), type=f"Incident{status.title().replace('_', '')}")
        return self.state
