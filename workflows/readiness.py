"""Readiness, on a Temporal Schedule (`irflow schedule`, `make run`): one run checks everything irflow needs to
respond (the AWS side per account and region, and the namespace's search attributes), compares each check with
the previous run's result, and notifies once per check whose state changed. The latest report is queryable
(`latest_report`); the runs' histories are the audit trail of readiness.

The previous result is Temporal's own: a run the schedule starts carries the result of the schedule's last
successful run (`workflow.get_last_completion_result`), exact and at once, where a visibility search could lag and
compare with an older run. A check's state is its status and the sorted list of its problems
(`CheckResult.problems`): one that goes on failing for another reason has changed too. A run with no previous
result (the schedule's first, or a run started by hand) notifies only about what is not passing; so does any run
about a check the previous one did not have. A run that cannot notify fails, and a failed run's result is never
handed on: the next run compares with the last run that did tell, and tells again.

Not here: whether a worker polls the task queue (`irflow preflight` checks it). This workflow runs on that queue,
so without a worker no run starts, and a run that checked would always find its own worker.

Size: one run runs checks × scopes activities at once and returns one report, one payload. Measured on the
stand-in account, a CheckResult serializes to 0.35-0.6 KB (the largest, the worker's permissions failing on all
its ~150 actions, would be about 9 KB, once per run). A scope beyond the security account's first region runs
6 checks (a member account's region) or 9 (another region of the security account), about 3-5 KB of report:
under Temporal's 2 MB payload limit a run takes some 400 scopes. Temporal's default of 2,000 pending activities
per workflow binds first, at about 300 scopes (e.g. 30 accounts × 10 regions); beyond that the checks would need
child workflows per account.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NamedTuple

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.notify import publish_notification
    from activities.readiness_temporal import (
        READINESS_NOTICE_ID,
        READINESS_WORKFLOW,
        PlannedCheck,
        ReadinessPlan,
        plan_readiness,
        where_checked,
    )
    from irflow.models.incident import NotifyInput
    from irflow.models.readiness import CheckResult, CheckStatus, ReadinessReport

from workflows.activity_options import retry

# A check looks and answers: a short timeout, a few quick retries; one that still errors counts as unknown.
CHECK = {"start_to_close_timeout": timedelta(seconds=30), "retry_policy": retry(3, 5)}
# The plan and the notifications: without them the run means nothing, so they retry longer.
NEEDED = {"start_to_close_timeout": timedelta(seconds=30), "retry_policy": retry(8, 10)}


class Change(NamedTuple):
    """One check whose state is not what the previous run said (`was` None: the previous run did not have it)."""

    was: CheckResult | None
    result: CheckResult


def state(result: CheckResult) -> tuple[CheckStatus, list[str]]:
    """What a change is told by: the status, and what is wrong (in any order)."""
    return result.status, sorted(result.problems)


def changes(previous: ReadinessReport | None, current: ReadinessReport) -> list[Change]:
    """Every check (by `CheckResult.key`) whose state differs from the previous run's; a check the previous run
    did not have (all of them, on the first run) only when it does not pass."""
    before = {r.key: r for r in previous.results} if previous else {}
    found = []
    for result in current.results:
        was = before.get(result.key)
        if (was is None and result.status != CheckStatus.PASS) or (was is not None and state(was) != state(result)):
            found.append(Change(was, result))
    return found


def notice(change: Change) -> NotifyInput:
    """The one message about one change: what, where, from what to what, what is newly wrong or no longer, the
    evidence and the fix."""
    result, was = change.result, change.was
    same = was is not None and was.status == result.status
    verb = {
        CheckStatus.FAIL: "fails for another reason" if same else "fails",
        CheckStatus.PASS: "passes again" if was else "passes",
        CheckStatus.UNKNOWN: "still cannot be checked" if same else "cannot be checked",
    }[result.status]
    subject = f"irflow readiness: {result.check} {verb} ({where_checked(result)})"
    before = set(was.problems) if was else set()
    new, gone = sorted(set(result.problems) - before), sorted(before - set(result.problems))
    # A required check that starts failing, or fails for a new reason, means irflow cannot respond as
    # configured: the escalation topic. One that fails for fewer reasons is news for the team.
    escalates = result.status == CheckStatus.FAIL and result.required and (not same or bool(new))
    return NotifyInput(
        incident_id=READINESS_NOTICE_ID,
        channel="escalation" if escalates else "team",
        subject=subject,
        body={
            "message": "\n".join(
                line
                for line in (
                    f"{result.title}: {result.status.value} (was {was.status.value if was else 'not checked'})",
                    f"Newly wrong: {', '.join(new)}" if new and was else "",
                    f"No longer wrong: {', '.join(gone)}" if gone else "",
                    f"Evidence: {result.evidence}" if result.evidence else "",
                    f"Fix: {result.fix}" if result.fix else "",
                )
                if line
            ),
            "readiness": result.model_dump(mode="json"),
            "key": result.key,
            "status": result.status.value,
            "previous_status": was.status.value if was else None,
            "previous_problems": was.problems if was else None,
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
        previous = (
            workflow.get_last_completion_result(ReadinessReport) if workflow.has_last_completion_result() else None
        )
        self.report = previous
        plan = await workflow.execute_activity(plan_readiness, result_type=ReadinessPlan, **NEEDED)
        results = await asyncio.gather(*(self._check(planned) for planned in plan.checks))
        report = ReadinessReport(checked_at=workflow.now(), results=list(results))
        for change in changes(previous, report):  # in display order, one message per change
            await workflow.execute_activity(publish_notification, notice(change), **NEEDED)
        self.report = report
        workflow.logger.info(
            "readiness: %d checks, %d failing, ready=%s, compared with %s",
            len(report.results),
            sum(r.status == CheckStatus.FAIL for r in report.results),
            report.ready,
            f"the run of {previous.checked_at.isoformat()}" if previous else "nothing",
        )
        return report

    async def _check(self, planned: PlannedCheck) -> CheckResult:
        try:
            return await workflow.execute_activity(planned.activity, planned.scope, result_type=CheckResult, **CHECK)
        except ActivityError as error:
            cause = error.cause
            return planned.unknown(cause.message if isinstance(cause, FailureError) else error.message)
