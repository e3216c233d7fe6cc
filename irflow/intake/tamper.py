"""Hand a tamper finding to every running incident that guards what the call touched; open nothing.

The detector turns a call that may undo a containment (by anyone but irflow) into a `TamperFinding` with the
handles of what it touched (`irflow.detection.tamper`). Here the incidents guarding one of them are found with
one visibility query on `IrflowGuarded`, and each gets the finding as an `add_finding` signal, to its own run:
it re-checks its containment. When none guards them, the call was ordinary administration and nothing happens.

Visibility is eventually consistent: on a real cluster an incident's new `IrflowGuarded` value is seen by the
query a little after the workflow wrote it (about a second; longer under load), so a call made in that gap
finds no incident here. The incident's own re-checks of its containment are what catch that case.

Temporal errors propagate, as `submit`'s do: the listener holds the message while Temporal is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from irflow.detection.tamper import TamperFinding
from irflow.intake.submit import finding_delivery
from irflow.models.incident import INCIDENT_WORKFLOW
from irflow.telemetry import tracer
from workflows import search_attributes as sa


@dataclass(frozen=True)
class TamperDelivery:
    """The incidents (workflow ids) a tamper finding reached; empty when nothing guards what it touched."""

    reached: tuple[str, ...]
    handles: tuple[str, ...]
    finding_type: str


def guarded_query(handles: list[str]) -> str:
    """The visibility query for the running incidents whose `IrflowGuarded` lists any of `handles` (IN on a
    keyword list matches a workflow when any of its values is in the list)."""
    if not handles:
        raise ValueError("no handles to look for")
    if any("'" in h or "\\" in h for h in handles):
        raise ValueError("a handle with a quote or backslash in it")  # tamper_handles never makes one
    running = f"WorkflowType = '{INCIDENT_WORKFLOW}' AND ExecutionStatus = 'Running'"
    listed = ", ".join(f"'{h}'" for h in handles)
    return f"{running} AND {sa.GUARDED.name} IN ({listed})"


async def guarding_runs(client: Client, handles: list[str]) -> list[tuple[str, str]]:
    """(workflow id, run id) of every running incident that guards one of `handles`."""
    found = [(w.id, w.run_id) async for w in client.list_workflows(guarded_query(handles))]
    return list(dict.fromkeys(found))


async def deliver_tamper(
    client: Client,
    tampered: TamperFinding,
    received_at: datetime | None = None,
    origin: str = "",
    delivery_id: str | None = None,
) -> TamperDelivery:
    """Signal `add_finding` to each running incident guarding what the call touched, to the run that guards it
    (a later run of the same incident key guards nothing yet). A run that ended meanwhile is passed over."""
    finding = tampered.finding
    delivery = finding_delivery(tampered, received_at, origin, delivery_id)
    attributes = {
        "irflow.finding.id": finding.id,
        "irflow.finding.type": finding.type,
        "irflow.delivery_id": delivery.delivery_id,
        "irflow.guarded": list(tampered.handles),  # identities only hashed, as in the search attribute
    }
    reached: list[str] = []
    with tracer.start_as_current_span("irflow.deliver_tamper", attributes=attributes) as span:
        for workflow_id, run_id in await guarding_runs(client, tampered.handles):
            try:
                await client.get_workflow_handle(workflow_id, run_id=run_id).signal("add_finding", delivery)
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:  # the incident ended since the query: it guards nothing
                    continue
                raise
            reached.append(workflow_id)
        span.set_attribute("irflow.reached", reached)
    return TamperDelivery(tuple(reached), tuple(tampered.handles), finding.type)
