"""The incident's record: what it did (actions, compensations), what it noted, the evidence it holds, the
findings it absorbed, and how it shows itself (search attributes, the Temporal UI's current details).

`IncidentRecord` is what a playbook sees of its incident (`workflows.playbook.IncidentContext`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.evidence import store_raw_finding, write_manifest
    from activities.worker_policy import WorkerPolicy
    from irflow.models.carry_over import CarriedRecord, finding_key, kept_findings
    from irflow.models.ec2 import InstanceContext
    from irflow.models.evidence import EvidenceObject, MemoryCaptureResult, SnapshotEvidence
    from irflow.models.finding import Finding
    from irflow.models.incident import (
        ActionRecord,
        ActionStatus,
        FindingDelivery,
        IncidentInput,
        IncidentState,
        ManifestInput,
        PolicyRequest,
        RawFindingInput,
        ResponsePolicy,
        StepResult,
        TimelineEntry,
    )
    from irflow.models.sequence import ChildIncident
    from irflow.visibility import redacted

from workflows import search_attributes as sa
from workflows.activity_options import QUICK, activity_name, execute
from workflows.policy import incident_severity
from workflows.saga import Saga

MAX_REMEMBERED_DELIVERIES = 10_000  # to recognise a redelivered message; a storm beyond this is counted as is
PENDING_RAW = 20  # original records not yet stored, past which a bounded incident keeps only the latest


def error_type(error: BaseException) -> str | None:
    cause = error.cause if isinstance(error, ActivityError) else error
    return cause.type if isinstance(cause, ApplicationError) else None


def error_text(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return str(cause) or type(cause).__name__


def summarise(result: Any) -> dict[str, Any]:
    """An activity's result as the action record keeps it."""
    if isinstance(result, StepResult):
        return {"changed": result.changed, **result.detail}
    if isinstance(result, list):
        return {"items": [summarise(r) for r in result]}
    if hasattr(result, "model_dump"):
        return result.model_dump(mode="json")
    return {"value": result}


class IncidentRecord:
    def __init__(self, request: IncidentInput) -> None:
        self.request = request
        self.state = IncidentState(
            incident_id=request.incident_id,
            playbook=request.playbook,
            severity=request.finding.severity,
            finding=request.finding,
            findings_absorbed=[request.finding],
            # The router's name for the subject (a user, not one of their keys), so the search attribute
            # set at start and the one the workflow keeps up to date agree.
            resource_id=request.resource_id or request.finding.resource.resource_id or "",
            received_at=request.received_at,
        )
        self.saga = Saga()
        self._policy = ResponsePolicy(approvers={})
        self._background: list[asyncio.Future] = []
        self._published: tuple[Any, ...] = ()
        # What the contained incident guards (irflow.models.guarded), published as IrflowGuarded.
        self.guarded: list[str] = []
        self._raw_pending: dict[str, tuple[str, str]] = {}
        self._raw_stored: dict[str, None] = {}
        # Set by `workflows.carry_over` once findings are many: then only the latest are kept whole (and their
        # original records), the rest counted. Dicts, not sets: the latest are the same on every replay.
        self.bounded, self.raw_dropped = False, 0
        self._keep_raw(request.finding, request.raw_packed)
        self._delivery_ids: dict[str, None] = {request.delivery_id: None}
        self._finding_keys: dict[str, None] = {finding_key(request.finding): None}

    # --- what a playbook reads ---

    @property
    def incident_id(self) -> str:
        return self.request.incident_id

    @property
    def finding(self) -> Finding:
        return self.request.finding

    @property
    def findings(self) -> list[Finding]:
        return self.state.findings_absorbed

    @property
    def policy(self) -> ResponsePolicy:
        """The worker's policy (`load_policy`); until it is read, one that lets nobody decide anything."""
        return self._policy

    async def load_policy(self) -> ResponsePolicy:
        """Ask the worker for its policy: recorded in history, never taken from the workflow's input."""
        self._policy = await workflow.execute_local_activity(
            WorkerPolicy.load_response_policy,
            PolicyRequest(incident_id=self.request.incident_id, account_id=self.request.finding.account_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )
        return self._policy

    @property
    def raw_packed(self) -> str | None:
        return self.request.raw_packed

    @property
    def routing_reason(self) -> str:
        return self.request.routing_reason

    # --- notes and actions ---

    def note(self, event: str) -> None:
        self.state.timeline.append(TimelineEntry(at=workflow.now(), phase=self.state.phase, event=event))

    async def act(self, activity: Callable[..., Any], argument: Any, options: dict[str, Any]) -> Any:
        name, started = activity_name(activity), workflow.now()
        try:
            result = await execute(activity, argument, options)
        except ActivityError as error:
            self.state.actions.append(self.action(name, ActionStatus.FAILED, started, error=error_text(error)))
            self.note(f"{name} failed: {error_text(error)}")
            self.publish()
            raise
        self.state.actions.append(self.action(name, ActionStatus.DONE, started, result=summarise(result)))
        self.publish()
        return result

    async def try_act(self, activity: Callable[..., Any], argument: Any, options: dict[str, Any]) -> Any | None:
        try:
            return await self.act(activity, argument, options)
        except ActivityError:
            return None

    def action(
        self,
        name: str,
        status: ActionStatus,
        started: datetime,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> ActionRecord:
        return ActionRecord(
            name=name,
            phase=self.state.phase,
            status=status,
            started_at=started,
            finished_at=workflow.now(),
            result=result or {},
            error=error,
        )

    def register_undo(self, step: str, undo: Callable[[Any], Any], argument: Any) -> None:
        self.saga.register(step, undo, argument)

    # --- what the incident learned and kept ---

    def keep_context(self, context: Any) -> None:
        if isinstance(context, InstanceContext):
            self.state.context = context
        else:
            self.state.resource_context = context.model_dump(mode="json")

    def keep_snapshots(self, snapshots: list[SnapshotEvidence]) -> None:
        kept = {s.snapshot_id for s in snapshots}
        self.state.snapshots = [s for s in self.state.snapshots if s.snapshot_id not in kept] + list(snapshots)

    def keep_memory_capture(self, capture: MemoryCaptureResult) -> None:
        self.state.memory_capture = capture

    def in_background(self, work: Any) -> asyncio.Future:
        """Work nobody needs to wait for (a snapshot's digest and forensic copy can take hours; the incidents of the
        resources an updated attack sequence adds, started from a signal, which cannot wait): the analyst is asked
        meanwhile; the report and the final manifest wait for it (`background_done`, work started while it waits
        included). The future, for a caller that does want to wait on it."""
        future = asyncio.ensure_future(work)
        self._background.append(future)
        return future

    def background_idle(self) -> bool:
        return all(f.done() for f in self._background)

    async def background_done(self) -> None:
        while self._background:
            await self._background.pop(0)

    def keep_related_incident(self, workflow_id: str) -> None:
        self.state.related_incidents.append(workflow_id)

    def keep_child(self, child: ChildIncident) -> None:
        """An incident this one opened or joined for a resource it names (an attack sequence's), or how it stands
        now: one entry per child, in the order they were opened; a new one is a related incident too."""
        children = self.state.children
        at = next((i for i, known in enumerate(children) if known.workflow_id == child.workflow_id), None)
        if at is None:
            children.append(child)
            self.keep_related_incident(child.workflow_id)
        else:
            children[at] = child

    def add_evidence(self, *objects: EvidenceObject) -> None:
        known = {(e.key, e.version_id) for e in self.state.evidence}
        self.state.evidence.extend(o for o in objects if (o.key, o.version_id) not in known)

    # --- findings ---

    def absorb(self, delivery: FindingDelivery) -> bool:
        """A finding delivered to the running incident; whether it is new (not a redelivery or a repeat)."""
        if delivery.delivery_id in self._delivery_ids:
            return False  # the same message delivered again (SQS is at-least-once): already counted
        if len(self._delivery_ids) < MAX_REMEMBERED_DELIVERIES:
            self._delivery_ids[delivery.delivery_id] = None
        self.state.finding_deliveries += 1
        finding = delivery.finding
        self._keep_raw(finding, delivery.raw_packed)
        if finding_key(finding) in self._finding_keys:
            return False
        self._finding_keys[finding_key(finding)] = None
        self.state.findings_absorbed.append(finding)
        summary = self.state.findings_summary
        if self.bounded and summary is not None:
            summary.count(finding)
            self.state.findings_absorbed = kept_findings(self.state.findings_absorbed)
            highest = incident_severity(self.state.findings_absorbed)
            self.state.severity = summary.highest if summary.highest.rank > highest.rank else highest
        else:
            self.state.severity = incident_severity(self.state.findings_absorbed)
        self.note(f"finding joined: {finding.type} ({finding.id}, count {finding.count}, {finding.severity})")
        self.publish()
        return True

    def _keep_raw(self, finding: Finding, packed: str | None) -> None:
        if packed and finding.raw_sha256 not in self._raw_stored and finding.raw_sha256 not in self._raw_pending:
            self._raw_pending[finding.raw_sha256] = (finding.id, packed)
            if self.bounded and len(self._raw_pending) > PENDING_RAW:  # a storm's: each up to 512 KB in memory
                del self._raw_pending[next(iter(self._raw_pending))]
                self.raw_dropped += 1

    async def store_raw_findings(self) -> None:
        """Each distinct original record becomes an exhibit (first at the evidence phase, then at closing)."""
        pending, self._raw_pending = self._raw_pending, {}
        requests = [
            RawFindingInput(incident_id=self.incident_id, finding_id=finding_id, raw_packed=packed, raw_sha256=sha)
            for sha, (finding_id, packed) in pending.items()
        ]
        stored = await asyncio.gather(*(self.try_act(store_raw_finding, r, QUICK) for r in requests))
        for request, evidence in zip(requests, stored, strict=True):
            if evidence is not None:
                self._raw_stored[request.raw_sha256] = None
                self.add_evidence(evidence)

    async def write_manifest(self) -> None:
        if not self.state.evidence:
            return
        request = ManifestInput(
            incident_id=self.incident_id,
            evidence=[e for e in self.state.evidence if e.kind != "manifest"],
            snapshots=self.state.snapshots,
        )
        manifest = await self.try_act(write_manifest, request, QUICK)
        if manifest:
            self.add_evidence(manifest)

    # --- continuing as new (workflows.carry_over) ---

    def carried(self, raw_bytes: int, remembered: int) -> CarriedRecord:
        """Its policy, what it guards, the latest deliveries and findings seen, the latest unstored originals."""
        newest = list(reversed(self._raw_pending.items()))
        sizes = accumulate(len(packed) for _, (_, packed) in newest)
        pending = [item for item, size in zip(newest, sizes, strict=True) if size <= raw_bytes][::-1]
        return CarriedRecord(
            policy=self._policy.model_dump(mode="json"),
            guarded=self.guarded,
            delivery_ids=list(self._delivery_ids)[-remembered:],
            finding_keys=list(self._finding_keys)[-remembered:],
            raw_pending={sha: list(kept) for sha, kept in pending},
            raw_stored=list(self._raw_stored)[-remembered:],
            raw_dropped=self.raw_dropped + len(self._raw_pending) - len(pending),
        )

    def restore(self, carried: CarriedRecord) -> None:
        self._policy = ResponsePolicy.model_validate(carried.policy)  # the one it started under, not reloaded
        self.guarded = carried.guarded
        self._delivery_ids.update(dict.fromkeys(carried.delivery_ids))
        self._finding_keys.update(dict.fromkeys(carried.finding_keys))
        self._raw_pending.update({sha: (kept[0], kept[1]) for sha, kept in carried.raw_pending.items()})
        self._raw_stored.update(dict.fromkeys(carried.raw_stored))
        self.bounded = True

    # --- how the incident shows itself ---

    def publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state. Search attributes are
        never encrypted, current details only with the codec on: both show the resource as the router decided
        (`IncidentInput.shown_resource_id`), and every identity the findings name only hashed (`irflow.visibility`)."""
        s = self.state
        shown = self.request.shown_resource_id or s.resource_id
        published = (str(s.status), str(s.phase), str(s.severity), tuple(self.guarded))
        if published != self._published:  # each upsert is a history event: only when something changed
            self._published = published
            attributes = sa.incident_attributes(
                incident_id=s.incident_id,
                finding=s.finding,
                resource_id=shown,
                status=str(s.status),
                phase=str(s.phase),
                severity=str(s.severity),
                guarded=self.guarded,
            )
            workflow.upsert_search_attributes(sa.as_updates(attributes))
        waiting = f"**Waiting for:** {s.pending_decision.question}" if s.pending_decision else ""
        last = next((a for a in reversed(s.actions) if a.name != "publish_notification"), None)
        details = "\n".join(
            line
            for line in (
                f"**Phase:** {s.phase} · **Status:** {s.status} · **Severity:** {s.severity}",
                waiting,
                f"**Last action:** {last.name} ({last.status})" if last else "",
                f"**Failure:** {s.failure_reason}" if s.failure_reason else "",
            )
            if line
        )
        workflow.set_current_details(redacted(details, *s.findings_absorbed, resource=(s.resource_id, shown)))
