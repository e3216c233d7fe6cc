"""What the report's tests share: one incident record built by hand (an EC2 instance contained, an
approval, evidence, a snapshot, a memory capture; no AWS, no Temporal), the times its milestones fall
at, how to read one section of the Markdown, and an attack sequence's children (`CHILDREN`: one opened and
waiting, one joined and rejected, with markup in its decision).

The helpers keep the leading underscore they had as private helpers of test_report.py, so the tests
that moved out of it (to test_report_html.py and tests/irflow/models/test_incident.py) read exactly
as before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from irflow.devstack.demo import sample_finding
from irflow.models.ec2 import InstanceContext
from irflow.models.evidence import EvidenceObject, MemoryCaptureResult, SnapshotEvidence
from irflow.models.finding import parse_guardduty
from irflow.models.incident import (
    ActionRecord,
    ActionStatus,
    Decision,
    DecisionKind,
    Eradication,
    IncidentState,
    Phase,
    Status,
    TimelineEntry,
)
from irflow.models.sequence import ChildIncident

INSTANCE_ID = "i-0a1b2c3d4e5f60718"
FINDING_AT = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)  # first seen 6 minutes before this
RECEIVED_AT = FINDING_AT + timedelta(seconds=30)
CONTAINED_AT = RECEIVED_AT + timedelta(seconds=42.5)
DECIDED_AT = RECEIVED_AT + timedelta(minutes=20)
MANIFEST_SHA = "a" * 64
REPORT_INPUT_SHA = "0123456789abcdef" * 4


def _action(name: str, phase: Phase, status: ActionStatus, offset_s: int, **extra) -> ActionRecord:
    start = RECEIVED_AT + timedelta(seconds=offset_s)
    return ActionRecord(
        name=name, phase=phase, status=status, started_at=start, finished_at=start + timedelta(seconds=2), **extra
    )


def _state(**overrides) -> IncidentState:
    finding = parse_guardduty(sample_finding(INSTANCE_ID, "111122223333", "us-east-1", now=FINDING_AT)).finding
    fields = dict(
        incident_id="ec2-111122223333-us-east-1-i-0a1b2c3d4e5f60718-20260301T090030Z",
        playbook="ec2-instance",
        status=Status.RESOLVED,
        phase=Phase.DONE,
        severity=finding.severity,
        finding=finding,
        resource_id=INSTANCE_ID,
        context=InstanceContext(
            instance_id=INSTANCE_ID,
            account_id="111122223333",
            region="us-east-1",
            state="running",
            tags={"Name": "web-1"},
            captured_at=RECEIVED_AT,
        ),
        plan_reasons=["member of Auto Scaling group shop-web: it will be detached"],
        actions=[
            _action("isolate_network", Phase.CONTAINMENT, ActionStatus.DONE, 5, result={"enis": 2}),
            _action("detach_from_asg", Phase.CONTAINMENT, ActionStatus.DONE, 8, result={"group": "shop-web"}),
            _action("revoke_sessions", Phase.CONTAINMENT, ActionStatus.FAILED, 12, error="AccessDenied | iam"),
        ],
        compensations=[_action("undo_detach_from_asg", Phase.CONTAINMENT, ActionStatus.UNDONE, 20)],
        decisions=[
            Decision(
                kind=DecisionKind.APPROVE,
                by="alice@example.com",
                at=DECIDED_AT,
                comment="confirmed C2 traffic",
                eradication=Eradication.TERMINATE,
                via="update",
                stage="eradication",
            )
        ],
        evidence=[
            EvidenceObject(
                kind="manifest",
                bucket="evidence-bkt",
                key="incidents/x/manifest.json",
                sha256=MANIFEST_SHA,
                size=2048,
                version_id="v-manifest-1",
                retain_until=datetime(2026, 4, 1, tzinfo=UTC),
                lock_mode="COMPLIANCE",
            ),
            EvidenceObject(
                kind="finding",
                bucket="evidence-bkt",
                key="incidents/x/finding.json",
                sha256=REPORT_INPUT_SHA,
                size=512,
            ),
        ],
        snapshots=[SnapshotEvidence(snapshot_id="snap-0001", volume_id="vol-0001", state="completed")],
        memory_capture=MemoryCaptureResult(command_id="cmd-42", status="Success", document="irflow-avml"),
        timeline=[
            TimelineEntry(at=RECEIVED_AT, phase=Phase.DETECTION, event="finding received"),
            TimelineEntry(at=CONTAINED_AT, phase=Phase.CONTAINMENT, event="instance isolated"),
            TimelineEntry(at=DECIDED_AT, phase=Phase.DECISION, event="approved by alice@example.com"),
        ],
        eradication=Eradication.TERMINATE,
        received_at=RECEIVED_AT,
        contained_at=CONTAINED_AT,
        decided_at=DECIDED_AT,
    )
    fields.update(overrides)
    return IncidentState(**fields)


def _section(markdown: str, title: str) -> str:
    """The text of one `## title` section, up to the next heading."""
    after = markdown.split(f"## {title}", 1)[1]
    return after.split("\n## ", 1)[0]


ACTION_NAMES = ["isolate_network", "detach_from_asg", "revoke_sessions"]


def drift(at: datetime, principal: str = "bob", **overrides):
    """A DriftRecord: containment found undone at `at` by the periodic check (the instance's interface back in
    its security group, changed by `principal` as CloudTrail names it), re-applied and holding again."""
    from irflow.models.incident import DriftRecord
    from irflow.models.postconditions import Change

    fields = dict(
        at=at,
        step="isolate_network",
        found="eni-1 carries sg-web",
        trigger="timer",
        changed_by=[Change(event_name="ModifyNetworkInterfaceAttribute", event_time=at, principal=principal)],
        reapplied=True,
        holds_after=True,
    )
    return DriftRecord(**{**fields, **overrides})


# An attack sequence's incidents, as its roll-up leaves them: the instance's opened and waiting, contained; the access
# key's joined (it was running already) and rejected, its decision carrying what a report must escape.
CHILDREN = [
    ChildIncident(
        workflow_id="ec2-111122223333-us-east-1-i-0a1b2c3d4e5f60718",
        incident_id="ec2-111122223333-us-east-1-i-0a1b2c3d4e5f60718-20260301T090031Z",
        resource_type="Instance",
        resource_id=INSTANCE_ID,
        playbook="ec2-instance",
        status="awaiting_decision",
        received_at=RECEIVED_AT,
        contained_at=CONTAINED_AT,
        time_to_contain_seconds=42.5,
    ),
    ChildIncident(
        workflow_id="iam-user-111122223333-us-east-1-h0123456789abcdef0123",
        incident_id="iam-user-111122223333-us-east-1-h0123456789abcdef0123-20260301T090031Z",
        resource_type="AccessKey",
        resource_id="alice.martin",
        playbook="iam-user-credentials",
        joined=True,
        status="rolled_back",
        time_to_contain_seconds=390.0,
        decisions=["reject (eradication) by bob: our | own <b>deploy</b> key"],
    ),
]
