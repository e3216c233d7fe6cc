"""The ReadinessWorkflow on its schedule, with stand-in AWS checks (whose answers each test sets) and the real
search-attributes check: it notifies once per check whose state (status and problems) changed, never when
nothing did, compares with the schedule's last successful run, and keeps its last report queryable."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from temporalio import activity
from temporalio.client import Client, ScheduleHandle, ScheduleState, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.notify import publish_notification
from activities.readiness_temporal import (
    READINESS_NOTICE_ID,
    PlannedCheck,
    ReadinessPlan,
    check_search_attributes,
    plan_readiness,
    temporal_plan,
)
from irflow.models.incident import StepResult
from irflow.models.readiness import CheckResult, CheckStatus, ReadinessReport, ReadinessScope
from irflow.models.settings import IrflowSettings
from irflow.models.source_findings import LinkedNotifyInput
from irflow.readiness_schedule import readiness_schedule, readiness_schedule_id
from tests.support import notifications, running_worker
from workflows.readiness import ReadinessWorkflow


class Standins:
    """Stand-in AWS checks and the plan that runs them in `scopes`; each answers `answers[check]` (a status and
    its problems). `publish_fails`: notifying fails, as with SNS refusing."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[CheckStatus, list[str]]] = {}
        self.scopes: list[ReadinessScope] = []
        self.publish_fails = False

    def answer(self, check: str, status: CheckStatus, *problems: str) -> None:
        self.answers[f"standin.{check}"] = (status, list(problems))

    def _answer(self, check: str, scope: ReadinessScope) -> CheckResult:
        status, problems = self.answers[check]
        return CheckResult(
            check=check,
            title=f"the stand-in {check}",
            account_id=scope.account_id,
            region=scope.region,
            status=status,
            evidence=f"{check} is {status.value}" + (f": {', '.join(problems)}" if problems else ""),
            fix="" if status == CheckStatus.PASS else f"make {check} pass",
            problems=problems,
        )

    @activity.defn
    def standin_alpha(self, scope: ReadinessScope) -> CheckResult:
        return self._answer("standin.alpha", scope)

    @activity.defn
    def standin_beta(self, scope: ReadinessScope) -> CheckResult:
        return self._answer("standin.beta", scope)

    @activity.defn
    def standin_broken(self, scope: ReadinessScope) -> CheckResult:
        raise ApplicationError("the service did not answer", non_retryable=True)

    @activity.defn(name=plan_readiness.__name__)
    def plan(self) -> ReadinessPlan:
        aws = [
            PlannedCheck(
                activity=fn.__name__,
                check=f"standin.{fn.__name__.split('_')[1]}",
                title="stand-in",
                scope=scope,
                account_id=scope.account_id,
                region=scope.region,
            )
            for scope in self.scopes
            for fn in (self.standin_alpha, self.standin_beta, self.standin_broken)
        ]
        return ReadinessPlan(checks=[*aws, *temporal_plan()])

    @activity.defn(name=publish_notification.__name__)
    def publish(self, request: LinkedNotifyInput) -> StepResult:
        if self.publish_fails:
            raise ApplicationError("SNS refused the message", non_retryable=True)
        return publish_notification(request)

    def activities(self) -> list:
        return [self.plan, self.standin_alpha, self.standin_beta, self.standin_broken, self.publish]


@pytest.fixture
def standins(workload) -> Standins:
    """Fresh stand-ins for each test, checking the workload's account and region."""
    made = Standins()
    made.scopes.append(ReadinessScope(account_id=workload.account_id, region=workload.region))
    return made


class ScheduledRuns:
    """The readiness schedule of a test's task queue, paused so that only the test starts runs."""

    def __init__(self, client: Client, schedule: ScheduleHandle, task_queue: str) -> None:
        self.client, self.schedule, self.task_queue = client, schedule, task_queue

    async def start(self) -> WorkflowHandle:
        """One run, started as the interval starts one, once the schedule has seen it end (it then hands the
        run's result, if it completed, to the next run)."""
        before = (await self.schedule.describe()).info.num_actions
        await self.schedule.trigger()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while loop.time() < deadline:
            info = (await self.schedule.describe()).info
            if info.num_actions > before and not info.running_actions:
                started = info.recent_actions[-1].action
                return self.client.get_workflow_handle(
                    started.workflow_id, run_id=started.first_execution_run_id, result_type=ReadinessReport
                )
            await asyncio.sleep(0.05)
        raise AssertionError(f"schedule {self.schedule.id} never ran to the end of a run")

    async def next(self) -> tuple[WorkflowHandle, ReadinessReport]:
        handle = await self.start()
        return handle, await handle.result()


@asynccontextmanager
async def scheduled(client: Client, settings: IrflowSettings) -> AsyncIterator[ScheduledRuns]:
    """The deployment's schedule (irflow/readiness_schedule.py) on the worker's task queue; deleted after."""
    paused = dataclasses.replace(readiness_schedule(settings), state=ScheduleState(paused=True, note="a test's"))
    schedule = await client.create_schedule(readiness_schedule_id(settings.task_queue), paused)
    try:
        yield ScheduledRuns(client, schedule, settings.task_queue)
    finally:
        await schedule.delete()
        async for run in client.list_workflows(f"TaskQueue = '{settings.task_queue}' AND ExecutionStatus = 'Running'"):
            await client.get_workflow_handle(run.id, run_id=run.run_id).terminate("test over")


@asynccontextmanager
async def readiness_runs(client: Client, standins: Standins) -> AsyncIterator[ScheduledRuns]:
    activities = [*standins.activities(), check_search_attributes]
    async with running_worker(client, activities=activities) as settings, scheduled(client, settings) as runs:
        yield runs


def _statuses(report: ReadinessReport) -> dict[str, str]:
    return {r.key: r.status.value for r in report.results}


async def test_it_notifies_once_per_change_of_state_and_keeps_the_last_report(dev_env, workload, standins):
    client = dev_env.client
    standins.answer("alpha", CheckStatus.PASS)
    standins.answer("beta", CheckStatus.FAIL, "beta is off")
    where = f"@{workload.account_id}/{workload.region}"
    notifications(workload)  # nothing left over from the workload's seeding
    async with readiness_runs(client, standins) as runs:
        _, first = await runs.next()
        # No poller check: the run is a task on the queue they check (irflow preflight has them).
        assert _statuses(first) == {
            f"standin.alpha{where}": "pass",
            f"standin.beta{where}": "fail",
            f"standin.broken{where}": "unknown",
            "temporal.search_attributes@-/-": "pass",
        }
        assert not first.ready, "a required check fails"
        broken = next(r for r in first.results if r.check == "standin.broken")
        assert "the service did not answer" in broken.evidence and broken.fix
        told = notifications(workload)
        # The first run tells what does not pass, one message each; a required failure escalates.
        assert sorted((m["readiness"]["check"], m["status"]) for m in told) == [
            ("standin.beta", "fail"),
            ("standin.broken", "unknown"),
        ]
        assert {m["incident_id"] for m in told} == {READINESS_NOTICE_ID}
        (beta,) = [m for m in told if m["readiness"]["check"] == "standin.beta"]
        assert beta["topic"] == workload.escalation_topic_arn and beta["readiness"]["fix"] == "make standin.beta pass"
        assert "standin.beta fails" in beta["subject"] and beta["previous_status"] is None

        await runs.next()
        assert notifications(workload) == [], "nothing changed: nothing is sent"

        standins.answer("alpha", CheckStatus.FAIL, "alpha is off")
        _, flipped = await runs.next()
        (message,) = notifications(workload)
        assert (message["key"], message["previous_status"], message["status"]) == (
            f"standin.alpha{where}",
            "pass",
            "fail",
        )
        assert _statuses(flipped)[f"standin.alpha{where}"] == "fail"

        standins.answer("alpha", CheckStatus.PASS)
        last, report = await runs.next()
        (message,) = notifications(workload)
        assert (message["readiness"]["check"], message["status"]) == ("standin.alpha", "pass")
        assert "passes again" in message["subject"] and message["topic"] == workload.notify_topic_arn

        queried = await last.query(ReadinessWorkflow.latest_report, result_type=ReadinessReport)
        assert queried == report and _statuses(queried)[f"standin.alpha{where}"] == "pass"


async def test_a_check_that_goes_on_failing_for_another_reason_is_told(dev_env, workload, standins):
    client = dev_env.client
    standins.answer("alpha", CheckStatus.FAIL, "rule-a missing")
    standins.answer("beta", CheckStatus.FAIL, "kms:Decrypt", "s3:PutObject")
    alpha = f"standin.alpha@{workload.account_id}/{workload.region}"
    notifications(workload)
    async with readiness_runs(client, standins) as runs:
        await runs.next()
        assert sorted(m["readiness"]["check"] for m in notifications(workload)) == [
            "standin.alpha",
            "standin.beta",
            "standin.broken",
        ]

        standins.answer("beta", CheckStatus.FAIL, "s3:PutObject", "kms:Decrypt")  # the same problems, reordered
        await runs.next()
        assert notifications(workload) == [], "the same problems in another order are no change"

        standins.answer("alpha", CheckStatus.FAIL, "rule-a missing", "rule-b missing")
        await runs.next()
        (told,) = notifications(workload)
        assert (told["key"], told["previous_status"], told["status"]) == (alpha, "fail", "fail")
        assert "standin.alpha fails for another reason" in told["subject"]
        assert "Newly wrong: rule-b missing" in told["message"] and told["previous_problems"] == ["rule-a missing"]
        assert told["topic"] == workload.escalation_topic_arn, "a new reason to fail escalates"

        standins.answer("alpha", CheckStatus.FAIL, "rule-b missing")
        await runs.next()
        (told,) = notifications(workload)
        assert told["readiness"]["problems"] == ["rule-b missing"]
        assert "No longer wrong: rule-a missing" in told["message"] and "Newly wrong" not in told["message"]
        assert told["topic"] == workload.notify_topic_arn, "failing for fewer reasons is news, not an escalation"


async def test_a_run_that_cannot_notify_fails_and_the_next_compares_with_the_last_that_told(
    dev_env, workload, standins
):
    client = dev_env.client
    standins.answer("alpha", CheckStatus.PASS)
    standins.answer("beta", CheckStatus.PASS)
    alpha = f"standin.alpha@{workload.account_id}/{workload.region}"
    notifications(workload)
    async with readiness_runs(client, standins) as runs:
        await runs.next()
        assert [m["readiness"]["check"] for m in notifications(workload)] == ["standin.broken"]

        standins.answer("alpha", CheckStatus.FAIL, "alpha is off")
        standins.publish_fails = True
        silent = await runs.start()
        with pytest.raises(WorkflowFailureError):
            await silent.result()
        assert notifications(workload) == []

        standins.publish_fails = False
        _, report = await runs.next()
        (told,) = notifications(workload)
        assert (told["key"], told["previous_status"], told["status"]) == (alpha, "pass", "fail")
        assert told["run_id"] != silent.run_id and report.results[0].status == CheckStatus.FAIL

        await runs.next()
        assert notifications(workload) == [], "told once: the run that told is the one compared with now"


async def test_a_check_the_previous_run_did_not_have_is_told_only_when_it_does_not_pass(dev_env, workload, standins):
    """A region added to the settings: its checks are new, and only those not passing are told."""
    client = dev_env.client
    standins.answer("alpha", CheckStatus.PASS)
    standins.answer("beta", CheckStatus.PASS)
    notifications(workload)
    async with readiness_runs(client, standins) as runs:
        await runs.next()
        assert [m["readiness"]["check"] for m in notifications(workload)] == ["standin.broken"]
        standins.scopes.append(ReadinessScope(account_id=workload.account_id, region="eu-west-1"))
        _, report = await runs.next()
        assert len(report.results) == 3 * 2 + 1
        told = notifications(workload)
        assert [(m["readiness"]["check"], m["readiness"]["region"]) for m in told] == [("standin.broken", "eu-west-1")]

        # A run started by hand, not by the schedule, has no previous result: it tells what does not pass.
        by_hand = await client.start_workflow(
            ReadinessWorkflow.run, id=f"{runs.schedule.id}-by-hand", task_queue=runs.task_queue
        )
        await by_hand.result()
        assert sorted(m["readiness"]["region"] for m in notifications(workload)) == ["eu-west-1", workload.region]
