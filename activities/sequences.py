"""Attack sequences fan out: the parent incident (`workflows.sequence_playbook`) opens or joins one incident per
resource the sequence names that a playbook answers, and before its report reads back how each went.

Opening goes through the listener's own path, resource by resource: the sequence as a finding about that resource
(`models.sequence_parsing.resource_finding`) is screened like any arrival (its account, `intake.filters`), routed
(`intake.router.route`: the playbook the listener would give a finding about it), and submitted with
signal-with-start on the resource's incident key (`activities.incidents`). A resource already in an incident joins
it; a retried call or a repeated sequence is one delivery per parent and resource, never a second incident.
Resources no playbook answers (triage) are not opened: the parent lists them, with why.

A resource in another account than the sequence's is opened only in an account irflow answers for, as the listener
decides it (`intake.trust.answered_accounts`: IRFLOW_ACCOUNTS, else the organization's, else the account of its own
credentials). Each submission is its own: one Temporal refuses is listed with its error, the others open all the
same. Whether a child was opened or joined is the child's to say (its opening finding is the sequence's, handed over
by this parent: `Finding.sequence_parent`), so a retried fan-out never turns an opened child into a joined one.

Both activities act on Temporal only (UNDECLARED: no IAM action of the worker's; with
IRFLOW_ACCOUNTS_FROM_ORGANIZATION the worker lists the organization as the listener does, which needs
organizations:ListAccounts: without it, other accounts are refused, saying so). `open_sequence_incidents` reads
IRFLOW_ATTACK_SEQUENCE_FANOUT and opens nothing when it is off.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from activities.aws import client as aws_client
from activities.aws import own_identity
from activities.incidents import open_related_incident, original_record
from activities.report_wording import decision_text
from irflow.intake.filters import suppression_reason
from irflow.intake.router import SEQUENCE_PLAYBOOK, TRIAGE_PLAYBOOK, Route, route
from irflow.intake.trust import AccountsUnknown, TrustPolicy, account_refusal, answered_accounts
from irflow.models.finding import AffectedResource, Finding, FindingRejected, ParsedFinding
from irflow.models.incident import Decision, IncidentState
from irflow.models.sequence import ChildIncident
from irflow.models.sequence_parsing import resource_finding
from irflow.models.settings import IrflowSettings, get_settings
from irflow.visibility import find_incident_run

# Submissions in flight at once: each is a start and a describe; a sequence names a handful, at most 50.
OPENED_AT_ONCE = 8
QUERY_TIMEOUT = timedelta(seconds=10)
DECISION_WORDS_MAX = 200
ERROR_WORDS_MAX = 300


class SequenceFanoutInput(BaseModel):
    incident_id: str = Field(description="the parent incident")
    finding: Finding = Field(description="the attack sequence, with the resources it names")
    raw_packed: str | None = None
    task_queue: str


class ChildNotOpened(BaseModel):
    resource: AffectedResource
    error: str = Field(description="what Temporal answered, in words")


class SequenceFanout(BaseModel):
    enabled: bool = Field(description="IRFLOW_ATTACK_SEQUENCE_FANOUT: off, nothing is opened")
    children: list[ChildIncident] = Field(default_factory=list, description="opened or joined, in the sequence's order")
    not_opened: list[str] = Field(default_factory=list, description="each resource not opened, and why, in words")
    failed: list[ChildNotOpened] = Field(
        default_factory=list, description="each resource whose submission failed: the others are opened all the same"
    )


class ChildIncidentsInput(BaseModel):
    incident_id: str = Field(description="the parent incident")
    children: list[ChildIncident]


def resource_words(resource: AffectedResource) -> str:
    return f"{resource.resource_type} {resource.resource_id or '(no valid id)'}"


class _WorkerSession:
    """The worker's own credentials, as `intake.trust.answered_accounts` asks for a client."""

    def client(self, service: str) -> Any:
        return aws_client(service, None)


def answering(settings: IrflowSettings) -> TrustPolicy:
    """The accounts irflow answers for, decided as the listener decides them; when AWS does not say, none (the
    sequence's own account was screened by the listener already), and why."""
    try:
        identity = None if settings.accounts or settings.accounts_from_organization else own_identity()
        accounts, accounts_from = answered_accounts(settings, session=_WorkerSession(), identity=identity)
    except (AccountsUnknown, BotoCoreError, ClientError) as error:
        return TrustPolicy(accounts=frozenset(), accounts_from=str(error))
    return TrustPolicy(accounts=accounts, accounts_from=accounts_from)


def plan_children(
    sequence: Finding, settings: IrflowSettings, parent: str, trust: TrustPolicy
) -> tuple[list[tuple[Finding, Route]], list[str]]:
    """(each resource's finding, handed over by the incident `parent`, and where the listener would route it, one
    per incident key; each resource not opened, and why). Pure: the same screening as an arrival at the listener
    (`trust`: the accounts irflow answers for), then the router."""
    planned: dict[str, tuple[Finding, Route]] = {}
    not_opened: list[str] = []
    for resource in sequence.sequence_resources:
        finding, named = resource_finding(sequence, resource, parent), resource_words(resource)
        if resource.refused:
            not_opened.append(f"{named}: {resource.refused}")
            continue
        elsewhere = finding.account_id != sequence.account_id
        refused = elsewhere and account_refusal(ParsedFinding(finding=finding, original_shape="related", raw={}), trust)
        if refused:
            not_opened.append(f"{named}: {refused.reason}")
            continue
        suppressed = suppression_reason(finding, settings)
        if suppressed:
            not_opened.append(f"{named}: suppressed, {suppressed}")
            continue
        try:
            destination = route(finding, settings.playbook_overrides)
        except FindingRejected as rejected:
            not_opened.append(f"{named}: {rejected.reason}")
            continue
        if destination.playbook in (TRIAGE_PLAYBOOK, SEQUENCE_PLAYBOOK):
            not_opened.append(f"{named}: no playbook answers it ({destination.reason})")
            continue
        planned.setdefault(destination.incident_key, (finding, destination))  # a bucket and its objects: one
    return list(planned.values()), not_opened


@activity.defn
async def open_sequence_incidents(request: SequenceFanoutInput) -> SequenceFanout:
    """One incident per resource a playbook answers, started or joined; idempotent (fixed delivery ids)."""
    settings = get_settings()
    if not settings.attack_sequence_fanout:
        return SequenceFanout(enabled=False)
    settings = settings.model_copy(update={"task_queue": request.task_queue})
    trust = await asyncio.to_thread(answering, settings)
    planned, not_opened = plan_children(request.finding, settings, request.incident_id, trust)
    raw = original_record(request.finding, request.raw_packed)
    gate = asyncio.Semaphore(OPENED_AT_ONCE)

    async def open_one(finding: Finding, destination: Route) -> ChildIncident | ChildNotOpened:
        try:
            async with gate:
                submission = await open_related_incident(
                    request.incident_id, finding, raw, settings, subject=destination.incident_key
                )
        except Exception as error:  # noqa: BLE001 (each child is its own: one refused never hides the others)
            activity.logger.warning("incident %s: %s not opened: %s", request.incident_id, destination.shown_id, error)
            words = f"{type(error).__name__}: {error}"[:ERROR_WORDS_MAX]
            return ChildNotOpened(resource=finding.resource, error=words)
        return ChildIncident(
            workflow_id=submission.workflow_id,
            incident_id=submission.incident_id,
            resource_type=finding.resource.resource_type,
            resource_id=destination.resource_id,
            playbook=destination.playbook,
            joined=submission.joined,
        )

    outcomes = await asyncio.gather(*(open_one(f, d) for f, d in planned))
    return SequenceFanout(
        enabled=True,
        children=[o for o in outcomes if isinstance(o, ChildIncident)],
        not_opened=not_opened,
        failed=[o for o in outcomes if isinstance(o, ChildNotOpened)],
    )


# --- the roll-up ---


def decision_words(decision: Decision) -> str:
    """One decision in words: 'approve (eradication) by alice, eradication: stop: confirmed'."""
    return decision_text(decision, when=False, how=False, limit=DECISION_WORDS_MAX)


def rolled_up(child: ChildIncident, state: IncidentState, parent: str) -> ChildIncident:
    """The child as its incident stands: status, when it was received and contained, how long that took (from its
    own detection), its decisions (accepted ones; notes and refusals are not decisions), and whether the parent
    joined it (its opening finding is not one the parent handed over)."""
    return child.model_copy(
        update={
            "joined": state.finding.sequence_parent != parent,
            "status": str(state.status),
            "received_at": state.received_at,
            "contained_at": state.contained_at,
            "time_to_contain_seconds": state.metrics()["detected_to_contained_s"],
            "decisions": [decision_words(d) for d in state.decisions if d.settles],
        }
    )


async def _state(handle: WorkflowHandle) -> IncidentState:
    return await handle.query("current_state", result_type=IncidentState, rpc_timeout=QUERY_TIMEOUT)


async def child_state(client: Client, child: ChildIncident) -> IncidentState:
    """The child's incident as it stands (a finished one answers too). Its workflow id is its resource's key: when
    the resource has had a later incident since, the child's own run is found by its incident's hash."""
    latest = await _state(client.get_workflow_handle(child.workflow_id))
    if latest.incident_id == child.incident_id:
        return latest
    handle = await find_incident_run(client, child.workflow_id, child.incident_id)
    if handle is None:
        raise LookupError(f"no run of {child.workflow_id} is incident {child.incident_id}")
    return await _state(handle)


@activity.defn
async def read_child_incidents(request: ChildIncidentsInput) -> list[ChildIncident]:
    """Each child as its incident stands; one that cannot be read keeps what the parent knew, its status unknown."""
    client = activity.client()

    async def read(child: ChildIncident) -> ChildIncident:
        try:
            return rolled_up(child, await child_state(client, child), request.incident_id)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, LookupError) as error:
            activity.logger.warning(
                "incident %s: child %s unreadable: %s", request.incident_id, child.workflow_id, error
            )
            return child.model_copy(update={"status": "unknown"})

    return list(await asyncio.gather(*(read(child) for child in request.children)))


UNDECLARED: tuple = (open_sequence_incidents, read_child_incidents)
