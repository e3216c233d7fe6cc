"""The blast-radius governor: at most N automatic containments per account per hour, M across the fleet.

One workflow per deployment holds the count, so it holds across any number of listeners and workers: every
incident that would contain without asking reserves a place first (update-with-start, from the activity
`reserve_automatic_containment`). A full hour sends the incident to an analyst instead. Updates are handled
one at a time by the workflow, so two incidents can never take the last place together.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from irflow.models.governor import (
        GOVERNOR_WORKFLOW,
        RESERVE_UPDATE,
        WINDOW_SECONDS,
        GovernorState,
        Reservation,
        ReservationRequest,
        Reserved,
    )

# Updates per run before the history is handed to a new run (continue-as-new), reservations carried over.
UPDATES_PER_RUN = 500


@workflow.defn(name=GOVERNOR_WORKFLOW)
class ContainmentGovernor:
    @workflow.init
    def __init__(self, carried: GovernorState) -> None:
        self.state = carried
        self.handled = 0

    @workflow.run
    async def run(self, carried: GovernorState) -> None:
        await workflow.wait_condition(lambda: self.handled >= UPDATES_PER_RUN and workflow.all_handlers_finished())
        self._expire()
        workflow.continue_as_new(self.state)

    @workflow.query
    def reservations(self) -> GovernorState:
        return self.state

    @workflow.update(name=RESERVE_UPDATE)
    def reserve(self, request: ReservationRequest) -> Reservation:
        self.handled += 1
        self._expire()
        held = self.state.reservations
        in_account = sum(1 for r in held if r.account_id == request.account_id)
        if any(r.incident_id == request.incident_id for r in held):  # a retried reservation: already counted
            return Reservation(granted=True, account_count=in_account, fleet_count=len(held))
        refusal = None
        if in_account >= request.per_account_limit:
            refusal = (
                f"{in_account} automatic containment(s) in account {request.account_id} in the last hour "
                f"(IRFLOW_MAX_AUTO_CONTAINMENTS_PER_HOUR={request.per_account_limit})"
            )
        elif len(held) >= request.fleet_limit:
            refusal = (
                f"{len(held)} automatic containment(s) across all accounts in the last hour "
                f"(IRFLOW_MAX_AUTO_CONTAINMENTS_FLEET_PER_HOUR={request.fleet_limit})"
            )
        if refusal:
            return Reservation(granted=False, reason=refusal, account_count=in_account, fleet_count=len(held))
        held.append(Reserved(incident_id=request.incident_id, account_id=request.account_id, at=workflow.now()))
        return Reservation(granted=True, account_count=in_account + 1, fleet_count=len(held))

    def _expire(self) -> None:
        since = workflow.now() - timedelta(seconds=WINDOW_SECONDS)
        self.state.reservations = [r for r in self.state.reservations if r.at > since]
