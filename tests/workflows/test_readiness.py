"""The ReadinessWorkflow with stand-in AWS checks (whose answers the test sets) and the real Temporal-side checks:
it notifies once per check whose state changed, never when nothing did, and keeps its last report queryable."""

from __future__ import annotations

import asyncio
import uuid

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.notify import publish_notification
from activities.readiness_temporal import (
    READINESS_NOTICE_ID,
    UNDECLARED,
    PlannedCheck,
    ReadinessPlan,
    plan_readiness,
    previous_readiness_report,
    temporal_plan,
)
from irflow.models.readiness import CheckResult, CheckStatus, ReadinessReport, ReadinessScope
from tests.support import notifications, running_worker
from workflows.readiness import ReadinessWorkflow

# What the stand-in checks answer, set by the test between runs.
ANSWERS: dict[str, CheckStatus] = {}
SCOPES: list[ReadinessScope] = []


def _answer(check: str, scope: ReadinessScope) -> CheckResult:
    status = ANSWERS[check]
    return CheckResult(
        check=check,
        title=f"the stand-in {check}",
        account_id=scope.account_id,
        region=scope.region,
        status=status,
        evidence=f"{check} is {status.value}",
        fix="" if status == CheckStatus.PASS else f"make {check} pass",
    )


@activity.defn
def standin_alpha(scope: ReadinessScope) -> CheckResult:
    return _answer("standin.alpha", scope)


@activity.defn
def standin_beta(scope: ReadinessScope) -> CheckResult:
    return _answer("standin.beta", scope)


@activity.defn
def standin_broken(scope: ReadinessScope) -> CheckResult:
    raise ApplicationError("the service did not answer", non_retryable=True)


@activity.defn(name=plan_readiness.__name__)
def standin_plan() -> ReadinessPlan:
    aws = [
        PlannedCheck(
            activity=fn.__name__,
            check=f"standin.{fn.__name__.split('_')[1]}",
            title="stand-in",
            scope=scope,
            account_id=scope.account_id,
            region=scope.region,
        )
        for scope in SCOPES
        for fn in (standin_alpha, standin_beta, standin_broken)
    ]
    return ReadinessPlan(checks=[*aws, *temporal_plan()])


TEMPORAL_ACTIVITIES = [fn for fn in UNDECLARED if fn is not plan_readiness]
ACTIVITIES = [standin_plan, standin_alpha, standin_beta, standin_broken, publish_notification, *TEMPORAL_ACTIVITIES]


async def _run(client: Client, queue: str) -> tuple[str, ReadinessReport]:
    """One run to its end, then until visibility lists it completed (as the next scheduled run will look it up)."""
    handle = await client.start_workflow(
        ReadinessWorkflow.run, id=f"readiness-{uuid.uuid4().hex[:8]}", task_queue=queue
    )
    report = await handle.result()
    query = f"WorkflowId = '{handle.id}' AND ExecutionStatus = 'Completed'"
    for _ in range(200):
        if [w async for w in client.list_workflows(query)]:
            return handle.id, report
        await asyncio.sleep(0.05)
    raise AssertionError(f"visibility never listed {handle.id} as completed")


def _statuses(report: ReadinessReport) -> dict[str, str]:
    return {r.key: r.status.value for r in report.results}


async def test_it_notifies_once_per_change_of_state_and_keeps_the_last_report(dev_env, workload):
    client = dev_env.client
    assert previous_readiness_report in TEMPORAL_ACTIVITIES
    SCOPES[:] = [ReadinessScope(account_id=workload.account_id, region=workload.region)]
    ANSWERS.update({"standin.alpha": CheckStatus.PASS, "standin.beta": CheckStatus.FAIL})
    where = f"@{workload.account_id}/{workload.region}"
    notifications(workload)  # nothing left over from the workload's seeding
    async with running_worker(client, activities=ACTIVITIES) as settings:
        _, first = await _run(client, settings.task_queue)
        assert _statuses(first) == {
            f"standin.alpha{where}": "pass",
            f"standin.beta{where}": "fail",
            f"standin.broken{where}": "unknown",
            "temporal.search_attributes@-/-": "pass",
            "temporal.workflow_pollers@-/-": "pass",
            "temporal.activity_pollers@-/-": "pass",
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

        await _run(client, settings.task_queue)
        assert notifications(workload) == [], "nothing changed: nothing is sent"

        ANSWERS["standin.alpha"] = CheckStatus.FAIL
        _, flipped = await _run(client, settings.task_queue)
        (message,) = notifications(workload)
        assert (message["key"], message["previous_status"], message["status"]) == (
            f"standin.alpha{where}",
            "pass",
            "fail",
        )
        assert _statuses(flipped)[f"standin.alpha{where}"] == "fail"

        ANSWERS["standin.alpha"] = CheckStatus.PASS
        last_id, last = await _run(client, settings.task_queue)
        (message,) = notifications(workload)
        assert (message["readiness"]["check"], message["status"]) == ("standin.alpha", "pass")
        assert "passes again" in message["subject"] and message["topic"] == workload.notify_topic_arn

        queried = await client.get_workflow_handle(last_id).query(
            ReadinessWorkflow.latest_report, result_type=ReadinessReport
        )
        assert queried == last and _statuses(queried)[f"standin.alpha{where}"] == "pass"


async def test_a_check_the_previous_run_did_not_have_is_told_only_when_it_does_not_pass(dev_env, workload):
    """A region added to the settings: its checks are new, and only those not passing are told."""
    client = dev_env.client
    SCOPES[:] = [ReadinessScope(account_id=workload.account_id, region=workload.region)]
    ANSWERS.update({"standin.alpha": CheckStatus.PASS, "standin.beta": CheckStatus.PASS})
    notifications(workload)
    async with running_worker(client, activities=ACTIVITIES) as settings:
        await _run(client, settings.task_queue)
        assert [m["readiness"]["check"] for m in notifications(workload)] == ["standin.broken"]
        SCOPES.append(ReadinessScope(account_id=workload.account_id, region="eu-west-1"))
        _, report = await _run(client, settings.task_queue)
        assert len(report.results) == 3 * 2 + 3
        told = notifications(workload)
        assert [(m["readiness"]["check"], m["readiness"]["region"]) for m in told] == [("standin.broken", "eu-west-1")]
