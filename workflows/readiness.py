"""Readiness, on a Temporal Schedule (`irflow schedule`, `make run`): one run checks everything irflow needs to
respond (the AWS side per account and region, and the Temporal side), compares each check with the previous run's
result, and notifies once per check whose state changed. The latest report is queryable (`latest_report`); the
runs' histories are the audit trail of readiness.

A run finds the previous result through visibility (`previous_readiness_report`): the latest ReadinessWorkflow
completed on its task queue. The first run, with nothing before it, notifies only about what is not passing; so
does any run about a check the previous one did not have. A run that cannot look up the previous result, or
cannot notify, fails, so the next run compares with the last run that did tell, and tells again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NamedTuple

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.notify import publish_notification
    from activities.readiness_temporal import (
        READINESS_NOTICE_ID,
        READINESS_WORKFLOW,
        PlannedCheck,
        PreviousReport,
        PreviousReportRequest,
        ReadinessPlan,
        plan_readiness,
        previous_readiness_report,
        where_checked,
    )
    from irflow.models.errors import NON_RETRYABLE_TYPES
    from irflow.models.incident import NotifyInput
    from irflow.models.readiness import CheckResult, CheckStatus, ReadinessReport

# A check looks and answers: a short timeout, a few quick retries; one that still errors counts as unknown.
CHECK = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=5),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE_TYPES,
    ),
}
# The plan, the previous result and the notifications: without them the run means nothing, so they retry longer.
NEEDED = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=8,
        non_retryable_error_types=NON_RETRYABLE_TYPES,
    ),
}


class Change(NamedTuple):
    """One check whose state is not what the previous run said (`was` None: the previous run did not have it)."""

    was: CheckStatus | None
    result: CheckResult


def changes(previous: ReadinessReport | None, current: ReadinessReport) -> list[Change]:
    """Every check (by `CheckResult.key`) whose status differs from the previous run's; a check the previous run
    did not have (all of them, on the first run) only when it does not pass."""
    before = {r.key: r.status for r in previous.results} if previous else {}
    found = []
    for result in current.results:
        was = before.get(result.key)
        if (was is None and result.status != CheckStatus.PASS) or (was is not None and was != result.status):
            found.append(Change(was, result))
    return found


def notice(change: Change) -> NotifyInput:
    """The one message about one change: what, where, from what to what, the evidence and the fix."""
    result, was = change.result, change.was
    verb = {
        CheckStatus.FAIL: "fails",
        CheckStatus.PASS: "passes again" if was else "passes",
        CheckStatus.UNKNOWN: "cannot be checked",
    }[result.status]
    subject = f"irflow readiness: {result.check} {verb} ({where_checked(result)})"
    # A required check that starts failing means irflow cannot respond as configured: the escalation topic.
    starts_failing = result.status == CheckStatus.FAIL and result.required
    return NotifyInput(
        incident_id=READINESS_NOTICE_ID,
        channel="escalation" if starts_failing else "team",
        subject=subject,
        body={
            "message": "\n".join(
                line
                for line in (
                    f"{result.title}: {result.status.value} (was {was.value if was else 'not checked'})",
                    f"Evidence: {result.evidence}" if result.evidence else "",
                    f"Fix: {result.fix}" if result.fix else "",
                )
                if line
            ),
            "readiness": result.model_dump(mode="json"),
            "key": result.key,
            "status": result.status.value,
            "previous_status": was.value if was else None,
            "workflow_id": workflow.info().workflow_id,  # the run whose history records this change
            "run_id": workflow.info().run_id,
        },
    )


@workflow.defn(name=READINESS_WORKFLOW)
class ReadinessWorkflow:
    def __init__(self) -> None:
        self.report: ReadinessReport | None = None

    @workflow.query
    def latest_report(self) -> ReadinessReport | None:
        """This run's report once it is done; until then the previous run's (none before the first)."""
        return self.report

    @workflow.run
    async def run(self) -> ReadinessReport:
        queue = workflow.info().task_queue
        plan, previous = await asyncio.gather(
            workflow.execute_activity(plan_readiness, result_type=ReadinessPlan, **NEEDED),
            workflow.execute_activity(
                previous_readiness_report, PreviousReportRequest(task_queue=queue), result_type=PreviousReport, **NEEDED
            ),
        )
        self.report = previous.report
        results = await asyncio.gather(*(self._check(planned) for planned in plan.checks))
        report = ReadinessReport(checked_at=workflow.now(), results=list(results))
        for change in changes(previous.report, report):  # in display order, one message per change
            await workflow.execute_activity(publish_notification, notice(change), **NEEDED)
        self.report = report
        workflow.logger.info(
            "readiness: %d checks, %d failing, ready=%s",
            len(report.results),
            sum(r.status == CheckStatus.FAIL for r in report.results),
            report.ready,
        )
        return report

    async def _check(self, planned: PlannedCheck) -> CheckResult:
        try:
            return await workflow.execute_activity(planned.activity, planned.scope, result_type=CheckResult, **CHECK)
        except ActivityError as error:
            cause = error.cause
            return planned.unknown(cause.message if isinstance(cause, FailureError) else error.message)
