"""The incident: what the workflow takes in, what it records, what analysts send it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from irflow.models.carry_over import CarriedGuard, CarriedRecord, CarriedUndo, Encoded, FindingsSummary
from irflow.models.ec2 import InstanceContext
from irflow.models.evidence import EvidenceObject, MemoryCapture, MemoryCaptureResult, SnapshotEvidence
from irflow.models.finding import Finding, Severity
from irflow.models.postconditions import Change
from irflow.models.proof import DecisionProof
from irflow.models.sequence import ChildIncident

# The incident workflow's type name: what clients start and list (`WorkflowType = 'IncidentWorkflow'`),
# so the listener and the CLI need not import the workflow's code.
INCIDENT_WORKFLOW = "IncidentWorkflow"
SHORT_ID_LENGTH = 8


def incident_hash(incident_id: str) -> str:
    """The SHA-256 of the incident id: searchable (the IrflowIncidentHash search attribute), and the source of
    the short id."""
    return hashlib.sha256(incident_id.encode()).hexdigest()


def short_id(incident_id: str) -> str:
    """The incident's name where 80 columns leave no room for its whole id: the start of its hash, so it never
    changes, and the same resource's next incident gets another."""
    return incident_hash(incident_id)[:SHORT_ID_LENGTH]


class Phase(StrEnum):
    """NIST SP 800-61 lifecycle, as the workflow walks it."""

    DETECTION = "detection_analysis"
    CONTAINMENT = "containment"
    EVIDENCE = "evidence"
    DECISION = "analyst_decision"
    ERADICATION = "eradication_recovery"
    REPORT = "post_incident"
    DONE = "done"


class Status(StrEnum):
    ACTIVE = "active"
    AWAITING_DECISION = "awaiting_decision"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (Status.RESOLVED, Status.ROLLED_BACK, Status.FAILED)


class Eradication(StrEnum):
    STOP = "stop"
    TERMINATE = "terminate"


class Approver(BaseModel):
    """Who may decide: `approver` may approve, reject and release; `analyst` may add notes. Keyed by an ARN glob
    (`arn:aws:iam::111122223333:user/alice`, `arn:aws:sts::111122223333:assumed-role/IR-Approver/*`), matched
    against the principal a decision's proof verifies; keyed by a name only when proofs are off (demo mode).
    `principals` are more of the person's own AWS identities (user names or ARNs): nobody decides an incident
    about themselves."""

    roles: list[Literal["approver", "analyst"]] = Field(default_factory=lambda: ["approver"])
    principals: list[str] = Field(default_factory=list)


class ResponsePolicy(BaseModel):
    """The rules an incident runs under, fixed when it starts so a replay decides the same way."""

    auto_contain_min_severity: Severity = Severity.MEDIUM
    manual_containment_tag: str = "irflow:containment"
    decision_timeout: timedelta = timedelta(hours=4)
    default_eradication: Eradication = Eradication.STOP
    memory_capture: MemoryCapture = MemoryCapture.SKIP
    memory_deadline: timedelta = Field(
        default=timedelta(seconds=120), description="IRFLOW_MEMORY_BEFORE_ISOLATION_SECONDS"
    )
    approvers: dict[str, Approver] = Field(default_factory=dict)
    two_person_min_severity: Severity = Severity.CRITICAL
    decision_reminder: timedelta | None = timedelta(hours=1)
    timeout_action: Literal["keep", "contain"] = Field(
        default="keep",
        description="when nobody decides in time: keep waiting (escalated), or — for the question whether to "
        "contain at all — contain. A timeout never deletes, stops or terminates anything.",
    )
    require_proof: bool = Field(
        default=True, description="decisions carry a signed proof of who decided (IRFLOW_DECISIONS_REQUIRE_PROOF)"
    )
    proof_max_age: timedelta = Field(default=timedelta(seconds=300), description="IRFLOW_PROOF_MAX_AGE_SECONDS")
    protected: list[str] = Field(
        default_factory=list, description="ARN globs never contained automatically (IRFLOW_PROTECTED)"
    )
    own_principals: list[str] = Field(
        default_factory=list, description="ARN globs of irflow's own principals, found by the worker at start"
    )
    max_auto_containments_per_hour: int = 10
    max_auto_containments_fleet_per_hour: int = 50
    verify_containment: timedelta | None = Field(
        default=timedelta(seconds=300),
        description="IRFLOW_VERIFY_CONTAINMENT_SECONDS: how often a contained incident re-checks its containment "
        "(besides whenever a finding joins it); None: only when a finding joins",
    )
    history_events_per_run: int = Field(default=4000, description="IRFLOW_HISTORY_EVENTS_PER_RUN")


class PolicyRequest(BaseModel):
    """What the worker is asked when an incident starts: its policy, for this incident."""

    incident_id: str
    account_id: str = ""


# A finding one incident hands another (an attack sequence's resources, a role's instance: activities.incidents) is
# delivered under `incident:<asking incident>:<resource>`: the incident asking answers for it to AWS, not the other.
RELATED_DELIVERY_PREFIX = "incident:"


class FindingDelivery(BaseModel):
    """One arrival of a finding: what the listener or `irflow ingest` hands to an incident."""

    finding: Finding
    raw_packed: str | None = Field(default=None, description="models.finding.pack_raw of the original record")
    received_at: datetime
    origin: str = Field(default="", description="queue URL, file name or 'stdin'")
    delivery_id: str = Field(
        description="identity of this arrival (the SQS message id, or origin + record hash): a redelivered "
        "message is recognised and not counted twice"
    )


class IncidentInput(BaseModel):
    incident_id: str
    playbook: str
    finding: Finding
    raw_packed: str | None = Field(default=None, description="the original record, packed (see pack_raw)")
    delivery_id: str = ""
    routing_reason: str = Field(default="", description="why the router chose this playbook")
    resource_id: str = Field(default="", description="what the incident is about, as the router named it")
    shown_resource_id: str = Field(
        default="",
        description="resource_id as it may be shown in clear (search attributes, the UI's details): the router's "
        "decision, an identity only as its hash (irflow.visibility)",
    )
    # No policy here: whoever starts a workflow could write one naming themselves the approver. The worker
    # reads its own (activities.worker_policy) when the incident starts; a `policy` in old inputs is ignored.
    received_at: datetime
    carried: CarriedIncident | None = Field(default=None, description="the previous run's, when continued as new")

    def model_post_init(self, context: Any, /) -> None:
        # Inputs written before the router passed `shown_resource_id` show the resource as they always did:
        # hashed exactly when the router had built its hash into the incident id (key plus "-<opened at>").
        if "shown_resource_id" not in self.model_fields_set and self.resource_id:
            from irflow.visibility import identity_hash

            hashed = identity_hash(self.resource_id)
            self.shown_resource_id = hashed if f"-{hashed}-" in self.incident_id else self.resource_id


class ActionStatus(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"


class ActionRecord(BaseModel):
    """One thing the incident did to the world (or tried to), with its result."""

    name: str
    phase: Phase
    status: ActionStatus
    started_at: datetime
    finished_at: datetime
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RELEASE = "release"
    NOTE = "note"


DecisionStage = Literal["containment", "eradication", "triage"]


class PendingDecision(BaseModel):
    kind: DecisionStage
    question: str
    options: list[str]
    since: datetime
    deadline: datetime | None = None
    escalated_at: datetime | None = None
    reminders: int = 0
    next_reminder_at: datetime | None = None
    approvals: list[str] = Field(default_factory=list, description="approvers so far (two-person rule)")
    approvals_required: int = 1


class DecisionRequest(BaseModel):
    """Who decides: a `proof` (irflow.models.proof, signed by the decider's AWS credentials), or, only when
    proofs are off (demo mode), a name `by` taken on trust. With a proof, `by` is ignored."""

    by: str = ""
    proof: DecisionProof | None = None

    def words(self) -> str:
        """What the proof's comment-sha256 covers: the comment, reason or text."""
        return ""

    def choice(self) -> str | None:
        return None


class ApproveRequest(DecisionRequest):
    comment: str = ""
    eradication: Eradication | None = None

    def words(self) -> str:
        return self.comment

    def choice(self) -> str | None:
        return self.eradication.value if self.eradication else None


class RejectRequest(DecisionRequest):
    reason: str = Field(min_length=1)

    def words(self) -> str:
        return self.reason


class ReleaseRequest(DecisionRequest):
    """End containment after recovery: the finding was real, the resource is clean, put it back."""

    comment: str = Field(min_length=1)

    def words(self) -> str:
        return self.comment


class NoteRequest(DecisionRequest):
    text: str = Field(min_length=1, max_length=4000)

    def words(self) -> str:
        return self.text


# Each decision's request model, by its kind (the workflow's validators and the CLI's proofs read requests alike).
DECISION_REQUESTS: dict[DecisionKind, type[DecisionRequest]] = {
    DecisionKind.APPROVE: ApproveRequest,
    DecisionKind.REJECT: RejectRequest,
    DecisionKind.RELEASE: ReleaseRequest,
    DecisionKind.NOTE: NoteRequest,
}


class DecisionOutcome(BaseModel):
    """What an update answers: accepted (and whether it still waits for a second approver)."""

    accepted: bool
    kind: DecisionKind
    stage: str | None = None
    message: str
    approvals: list[str] = Field(default_factory=list)
    approvals_required: int = 1


class Decision(BaseModel):
    kind: DecisionKind
    by: str = Field(description="the ARN STS verified from the decision's proof (a name only in demo mode)")
    proof_id: str | None = Field(default=None, description="SHA-256 of the proof's signature: good for one use")
    at: datetime
    comment: str = ""
    eradication: Eradication | None = None
    via: str = "signal"
    stage: DecisionStage | None = None
    accepted: bool = True
    refusal: str | None = None

    @property
    def settles(self) -> bool:
        """An accepted approve, reject or release: a note, or a refused decision, settles nothing."""
        return self.accepted and self.kind != DecisionKind.NOTE


class TimelineEntry(BaseModel):
    at: datetime
    phase: Phase
    event: str


class DriftRecord(BaseModel):
    """Containment found undone while the incident held it (someone re-enabled a key, put an instance back into
    its groups...), and what irflow did about it: re-applied the step, checked again, escalated."""

    at: datetime
    step: str = Field(description="the containment step whose postcondition no longer held")
    found: str = Field(description="what the check found, in words")
    trigger: Literal["finding", "timer"] = Field(description="a finding joining the incident, or the periodic check")
    changed_by: list[Change] = Field(
        default_factory=list, description="who changed it: the tamper finding's actor, or CloudTrail's records"
    )
    changed_by_unknown: str = Field(default="", description="why nobody could be named (CloudTrail's reason)")
    reapplied: bool = Field(default=False, description="the step ran again and succeeded")
    reapply_error: str | None = None
    holds_after: bool = Field(default=False, description="the check passed again after the re-apply")
    found_after: str = ""
    escalated: bool = Field(
        default=True, description="False: the same step still did not hold, escalated once already (not again)"
    )


class IncidentState(BaseModel):
    """What the `state` query returns and the post-incident report is built from."""

    incident_id: str
    playbook: str
    status: Status = Status.ACTIVE
    phase: Phase = Phase.DETECTION
    severity: Severity
    finding: Finding
    findings_absorbed: list[Finding] = Field(default_factory=list)
    finding_deliveries: int = Field(default=1, description="distinct arrivals (queue messages), repeats included")
    findings_summary: FindingsSummary | None = Field(default=None, description="every finding, counted")
    resource_id: str
    context: InstanceContext | None = None
    resource_context: dict[str, Any] | None = Field(
        default=None, description="prior state of a resource other than an instance (user, bucket...)"
    )
    containment_requires_approval: bool = False
    plan_reasons: list[str] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    compensations: list[ActionRecord] = Field(default_factory=list)
    pending_decision: PendingDecision | None = None
    decisions: list[Decision] = Field(default_factory=list)
    evidence: list[EvidenceObject] = Field(default_factory=list)
    snapshots: list[SnapshotEvidence] = Field(default_factory=list)
    memory_capture: MemoryCaptureResult | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    escalations: list[datetime] = Field(default_factory=list)
    drifts: list[DriftRecord] = Field(default_factory=list, description="containment found undone, and repaired")
    containment_checks: int = Field(default=0, description="times the containment's postconditions were checked")
    last_verified_at: datetime | None = Field(default=None, description="the last check where everything held")
    related_incidents: list[str] = Field(
        default_factory=list, description="workflow ids of incidents this one opened or joined"
    )
    children: list[ChildIncident] = Field(
        default_factory=list, description="an attack sequence's incidents, one per resource it names"
    )
    failure_reason: str | None = None
    eradication: Eradication | None = None
    report_keys: list[str] = Field(default_factory=list)
    received_at: datetime
    contained_at: datetime | None = None
    decided_at: datetime | None = None
    recovered_at: datetime | None = None
    closed_at: datetime | None = None

    def absorbed_count(self) -> int:
        return self.findings_summary.absorbed if self.findings_summary else len(self.findings_absorbed)

    def first_observed_at(self) -> datetime:
        """When the activity was first seen: the earliest first sighting over every finding absorbed."""
        findings = self.findings_absorbed or [self.finding]
        first = self.findings_summary.first_seen if self.findings_summary else None
        return min([f.observed_at for f in findings] + ([first] if first else []))

    def milestones(self) -> dict[str, datetime | None]:
        """The incident's moments, from its own record only (deterministic: the workflow may call this).

        `first_decision` is the first accepted decision (the containment approval when policy asked for
        one, or the first of two approvals), `decided` the one the workflow acted on last (the verdict on
        eradication, or the only decision taken). Refused decisions and notes are not decisions.
        """
        accepted = [d.at for d in self.decisions if d.settles]
        return {
            "first_observed": self.first_observed_at(),
            "detected": self.received_at,
            "contained": self.contained_at,
            "first_decision": min(accepted) if accepted else self.decided_at,
            "decided": self.decided_at or (max(accepted) if accepted else None),
            "recovered": self.recovered_at,
            "closed": self.closed_at,
        }

    def metrics(self) -> dict[str, float | None]:
        """Seconds from the activity's first observation (and from irflow's detection) to each milestone,
        then between consecutive milestones. None where the incident never got there."""
        m = self.milestones()

        def since(start: str, end: str) -> float | None:
            a, b = m[start], m[end]
            return round((b - a).total_seconds(), 3) if a and b else None

        return {
            # from the finding's first observation (GuardDuty eventFirstSeen)
            "observed_to_detected_s": since("first_observed", "detected"),
            "observed_to_contained_s": since("first_observed", "contained"),
            "observed_to_first_decision_s": since("first_observed", "first_decision"),
            "observed_to_decided_s": since("first_observed", "decided"),
            "observed_to_recovered_s": since("first_observed", "recovered"),
            "observed_to_closed_s": since("first_observed", "closed"),
            # from irflow's detection (the finding's arrival)
            "detected_to_contained_s": since("detected", "contained"),
            "detected_to_first_decision_s": since("detected", "first_decision"),
            "detected_to_decided_s": since("detected", "decided"),
            "detected_to_recovered_s": since("detected", "recovered"),
            "detected_to_closed_s": since("detected", "closed"),
            # phase to phase
            "contained_to_decided_s": since("contained", "decided"),
            "decided_to_recovered_s": since("decided", "recovered"),
        }


class CarriedIncident(BaseModel):
    """What a run hands the next when the incident continues as new (irflow.models.carry_over)."""

    state: IncidentState
    record: CarriedRecord
    playbook: dict[str, Encoded] = Field(default_factory=dict)
    applied: list[tuple[str, Encoded]] = Field(default_factory=list, description="containment steps taken")
    undos: list[CarriedUndo] = Field(default_factory=list, description="the saga, oldest first")
    guard: CarriedGuard | None = None
    used_proofs: list[str] = Field(default_factory=list)


class StepResult(BaseModel):
    """What an activity changed. `changed=False` means the world was already as wanted (idempotency)."""

    changed: bool
    detail: dict[str, Any] = Field(default_factory=dict)


class RawFindingInput(BaseModel):
    incident_id: str
    finding_id: str
    raw: dict[str, Any] | None = None
    raw_packed: str | None = None
    raw_sha256: str | None = Field(default=None, description="checked against the record before it is stored")


class ManifestInput(BaseModel):
    incident_id: str
    evidence: list[EvidenceObject]
    snapshots: list[SnapshotEvidence] = Field(default_factory=list)


class NotifyInput(BaseModel):
    incident_id: str
    channel: Literal["team", "escalation"] = "team"
    subject: str
    body: dict[str, Any]


class TriageInput(BaseModel):
    """A finding no containment playbook answers: describe what it names, keep it as evidence."""

    incident_id: str
    finding: Finding


class RelatedIncidentsInput(BaseModel):
    """Open (or join) the incidents of instances a finding implicates, from another incident."""

    incident_id: str = Field(description="the incident asking")
    finding: Finding
    raw_packed: str | None = None
    instance_ids: list[str]
    task_queue: str
    reason: str


class RelatedIncident(BaseModel):
    instance_id: str
    workflow_id: str
    incident_id: str
    joined: bool


IncidentInput.model_rebuild()
