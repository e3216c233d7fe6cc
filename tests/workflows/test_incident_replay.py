"""Upgrading with incidents running (docs/operations.md): every history recorded from a finished incident (one per
playbook and outcome, tests/workflows/histories/README.md) replays on the workflows as they are on disk, with the
workflows and data converter the worker registers. A change that would break a running incident (a step inserted,
two steps swapped, without a `workflow.patched` gate) fails here, before it reaches a worker.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

import worker
from activities.evidence import collect_console_output, collect_instance_metadata
from activities.readiness_temporal import READINESS_WORKFLOW
from irflow.models.ec2 import Ec2StepInput
from irflow.models.evidence import EvidenceObject, MemoryCapture
from irflow.models.governor import GOVERNOR_WORKFLOW
from irflow.models.incident import INCIDENT_WORKFLOW, Eradication, IncidentInput, IncidentState, Status
from irflow.models.readiness import ReadinessReport
from workflows.activity_options import QUICK
from workflows.ec2_playbook import Ec2Playbook
from workflows.governor import ContainmentGovernor
from workflows.incident import PLAYBOOKS, IncidentWorkflow
from workflows.readiness import ReadinessWorkflow

HISTORIES = Path(__file__).parent / "histories"
# What worker.build_worker registers, with the converter the worker's client uses (the payload codec of a
# deployment is off in the recordings).
WORKFLOWS = {
    INCIDENT_WORKFLOW: IncidentWorkflow,
    GOVERNOR_WORKFLOW: ContainmentGovernor,
    READINESS_WORKFLOW: ReadinessWorkflow,
}


def recorded() -> list[WorkflowHistory]:
    """Every recorded history; its workflow id is its file's name."""
    paths = sorted(HISTORIES.glob("*.json"))
    assert paths, f"no history in {HISTORIES}: record them (tests/workflows/record_histories.py)"
    return [WorkflowHistory.from_json(path.stem, path.read_text()) for path in paths]


async def replay_failures(histories: list[WorkflowHistory], runner=None) -> dict[str, Exception]:
    """The histories (by workflow id) that do not replay on the workflows as they are now, with why."""
    options = {"workflow_runner": runner} if runner else {}
    replayer = Replayer(workflows=list(WORKFLOWS.values()), data_converter=pydantic_data_converter, **options)

    async def each():
        for history in histories:
            yield history

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    ids = {history.run_id: history.workflow_id for history in histories}
    return {ids[run_id]: failure for run_id, failure in results.replay_failures.items()}


def _event(history: WorkflowHistory, *types: EventType.ValueType) -> HistoryEvent:
    return next(e for e in history.events if e.event_type in types)


def _started(history: WorkflowHistory):
    return _event(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED).workflow_execution_started_event_attributes


async def _decoded(payloads, kind: type):
    (value,) = await pydantic_data_converter.decode(list(payloads), [kind])
    return value


async def test_every_recorded_history_replays_on_the_workflows_on_disk():
    histories = recorded()
    assert await replay_failures(histories) == {}
    recorded_types = {_started(h).workflow_type.name for h in histories}
    assert set(WORKFLOWS.values()) == set(worker.WORKFLOWS), "the workflows worker.build_worker registers"
    assert recorded_types == set(WORKFLOWS), "a history of every workflow the worker runs"


async def test_they_cover_every_playbook_approved_and_rejected_and_the_instance_undone_and_timed_out():
    """Read with the project's converter: what each incident was and how it ended, as its history says."""
    outcomes: dict[str, set[str]] = defaultdict(set)
    for history in recorded():
        started = _started(history)
        if started.workflow_type.name != INCIDENT_WORKFLOW:
            continue
        request = await _decoded(started.input.payloads, IncidentInput)
        ended = _event(
            history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
        )
        if ended.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = ended.workflow_execution_failed_event_attributes.failure
            assert failure.application_failure_info.type == "IncidentRolledBack", (history.workflow_id, failure.message)
            outcomes[request.playbook].add("compensated")
            continue
        state = await _decoded(ended.workflow_execution_completed_event_attributes.result.payloads, IncidentState)
        assert state.playbook == request.playbook and state.incident_id == request.incident_id
        assert history.workflow_id.endswith(("approved", "released", "timed_out", "rejected")), history.workflow_id
        expected = Status.ROLLED_BACK if history.workflow_id.endswith("rejected") else Status.RESOLVED
        assert state.status == expected, history.workflow_id
        outcomes[request.playbook].add("rejected" if expected == Status.ROLLED_BACK else "approved")
        if state.escalations:
            outcomes[request.playbook].add("timed out")
    assert {name: {"approved", "rejected"} <= found for name, found in outcomes.items()} == dict.fromkeys(
        PLAYBOOKS, True
    ), "every playbook approved and rejected (tests/workflows/record_histories.py)"
    assert {"compensated", "timed out"} <= outcomes["ec2-instance"]


async def test_the_readiness_runs_decode_ready_then_not():
    reports = {}
    for history in recorded():
        if history.workflow_id.startswith("readiness_"):
            ended = _event(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
            result = ended.workflow_execution_completed_event_attributes.result.payloads
            reports[history.workflow_id] = await _decoded(result, ReadinessReport)
    assert reports["readiness_ready"].ready and not reports["readiness_one_check_failing"].ready


# --- a change the replay catches, and the same change gated ---


class StepBeforeStopping(Ec2Playbook):
    """A step inserted: the console output read once more before the approved eradication."""

    gate: str | None = None  # a `workflow.patched` id, or None for the change made without a gate

    async def eradicate(self, choice: Eradication) -> None:
        if self.gate is None or workflow.patched(self.gate):
            await self.incident.try_act(collect_console_output, self.target, QUICK)
        await super().eradicate(choice)


class ConsoleBeforeMetadata(Ec2Playbook):
    """Two steps swapped: the evidence of Ec2Playbook.collect_evidence, the console output asked for first."""

    gate: str | None = None

    async def collect_evidence(self) -> None:
        if self.gate is not None and not workflow.patched(self.gate):
            return await super().collect_evidence()
        incident, step = self.incident, Ec2StepInput(target=self.target, prior=self.context)
        jobs = [
            self.take_snapshots(step),
            incident.try_act(collect_console_output, self.target, QUICK),
            incident.try_act(collect_instance_metadata, step, QUICK),
        ]
        if incident.policy.memory_capture == MemoryCapture.THROUGH_ENDPOINTS:
            jobs.append(self.capture_memory())
        elif self.memory is not None:
            jobs.append(self.memory)
        else:
            self.keep_memory(None)
        _, *objects = await asyncio.gather(*jobs)
        incident.add_evidence(*(item for item in objects if isinstance(item, EvidenceObject)))


def _gated(change: type[Ec2Playbook]) -> type[Ec2Playbook]:
    return type(f"Gated{change.__name__}", (change,), {"gate": f"replay-test-{change.__name__}"})


@pytest.fixture
def ec2_histories() -> dict[str, WorkflowHistory]:
    return {h.workflow_id: h for h in recorded() if h.workflow_id.startswith("ec2_")}


# Unsandboxed: the sandbox would import workflows.incident afresh, without the altered playbook put in its place.
@pytest.mark.parametrize(
    "change, recorded_there",
    [(StepBeforeStopping, "stop_instance"), (ConsoleBeforeMetadata, "collect_instance_metadata")],
)
async def test_a_changed_playbook_fails_replay_and_the_same_change_gated_replays(
    change, recorded_there, ec2_histories, monkeypatch
):
    monkeypatch.setitem(PLAYBOOKS, Ec2Playbook.name, change)
    failure = (await replay_failures([ec2_histories["ec2_approved"]], UnsandboxedWorkflowRunner())).get("ec2_approved")
    assert isinstance(failure, workflow.NondeterminismError), failure
    # Where the history has the step it recorded, the changed code asks for another.
    said = str(failure)
    assert f"scheduled event '{recorded_there}' does not match" in said and "'collect_console_output'" in said

    monkeypatch.setitem(PLAYBOOKS, Ec2Playbook.name, _gated(change))
    assert await replay_failures(list(ec2_histories.values()), UnsandboxedWorkflowRunner()) == {}
