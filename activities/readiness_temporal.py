"""Readiness on the Temporal side, and what the scheduled ReadinessWorkflow asks of Temporal: which checks to run
where (the plan). Temporal, not AWS: none of these needs an IAM action of the worker, so they are in `UNDECLARED`.

The checks are plain functions of a client (`temporal_checks`), run by `irflow preflight` in-process: irflow's
search attributes in the namespace, and a worker polling the task queue for each kind of task. The workflow runs
only the first, as an activity (`activity.client()`): it runs on the task queue the pollers check, so without a
worker no run starts, and a run would always find its own worker polling; those two are preflight's alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueKind, TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from irflow.models.readiness import CheckResult, CheckStatus, ReadinessScope
from irflow.models.settings import IrflowSettings, get_settings
from workflows import search_attributes as sa

READINESS_WORKFLOW = "ReadinessWorkflow"
# What readiness notifications name as their incident: they are about the deployment, not one incident.
READINESS_NOTICE_ID = "irflow-readiness"
# Temporal forgets a poller it has not heard from in five minutes; a live worker long-polls about once a minute.
POLLER_FRESH = timedelta(minutes=5)

SEARCH_ATTRIBUTES = "temporal.search_attributes"
WORKFLOW_POLLERS = "temporal.workflow_pollers"
ACTIVITY_POLLERS = "temporal.activity_pollers"
TITLES = {
    SEARCH_ATTRIBUTES: "The Temporal namespace has irflow's search attributes",
    WORKFLOW_POLLERS: "A worker polls the task queue for workflow tasks",
    ACTIVITY_POLLERS: "A worker polls the task queue for activity tasks",
}


class PlannedCheck(BaseModel):
    """One check the workflow runs: the activity, the scope it takes, and what to report should it error."""

    activity: str = Field(description="the check activity's name; it takes the scope and returns a CheckResult")
    check: str
    title: str
    required: bool = True
    scope: ReadinessScope
    account_id: str = Field(default="", description="where its result says it looked (a global check: no region)")
    region: str = ""

    def unknown(self, reason: str) -> CheckResult:
        """The check's place in the report when it could not run at all: where its result would have been."""
        return CheckResult(
            check=self.check,
            title=self.title,
            account_id=self.account_id,
            region=self.region,
            status=CheckStatus.UNKNOWN,
            required=self.required,
            evidence=f"the check could not run: {reason}",
            fix="see the worker's log for the error; the next scheduled run (or `irflow preflight`) checks again",
        )


class ReadinessPlan(BaseModel):
    checks: list[PlannedCheck] = Field(default_factory=list)


def where_checked(result: CheckResult) -> str:
    """Where a check looked, in words: Temporal, the security account (a global check), or an account and region."""
    if result.check.startswith("temporal."):
        return "Temporal"
    account = result.account_id or ("security account" if not result.region else "own account")
    return f"{account} {result.region}".strip()


# --- the checks, as plain functions of a client ---


def _result(check: str, status: CheckStatus, evidence: str, fix: str = "") -> CheckResult:
    return CheckResult(
        check=check, title=TITLES[check], status=status, evidence=evidence, fix="" if status == "pass" else fix
    )


def _unknown(check: str, error: RPCError, doing: str) -> CheckResult:
    return _result(
        check,
        CheckStatus.UNKNOWN,
        f"{doing} failed: {error.status.name if error.status else 'error'}: {' '.join(error.message.split())[:200]}",
        "make sure this client may call the Temporal API named (and that Temporal answers), then check again",
    )


async def search_attributes_check(client: Client) -> CheckResult:
    """Every search attribute irflow sets (workflows/search_attributes.py) exists with its type: without them an
    incident cannot start, and `irflow list` cannot filter."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as error:
        return _unknown(SEARCH_ATTRIBUTES, error, f"listing the search attributes of namespace {client.namespace}")
    custom = dict(listed.custom_attributes)
    missing = [key.name for key in sa.ALL if key.name not in custom]
    mistyped = [
        f"{key.name} is {IndexedValueType.Name(custom[key.name])}"
        for key in sa.ALL
        if key.name in custom and custom[key.name] != key.indexed_value_type
    ]
    if not missing and not mistyped:
        return _result(
            SEARCH_ATTRIBUTES, CheckStatus.PASS, f"all {len(sa.ALL)} registered in namespace {client.namespace}"
        )
    evidence = "; ".join(
        part
        for part in (
            f"missing in namespace {client.namespace}: {', '.join(missing)}" if missing else "",
            f"wrong type: {', '.join(mistyped)}" if mistyped else "",
        )
        if part
    )
    types = ", ".join(
        f"{key.name} {IndexedValueType.Name(key.indexed_value_type).removeprefix('INDEXED_VALUE_TYPE_')}"
        for key in sa.ALL
    )
    return _result(
        SEARCH_ATTRIBUTES,
        CheckStatus.FAIL,
        evidence,
        "run `irflow setup-namespace` with this TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE (on Temporal Cloud, add them "
        f"to the namespace in the Cloud UI or with tcld); irflow's attributes and types: {types}"
        + (
            "; a mistyped attribute must be removed first (`temporal operator search-attribute remove`)"
            if mistyped
            else ""
        ),
    )


async def pollers_check(client: Client, task_queue: str, kind: Literal["workflow", "activity"]) -> CheckResult:
    """A worker polled `task_queue` for `kind` tasks in the last five minutes: otherwise incidents wait, unrun."""
    check = WORKFLOW_POLLERS if kind == "workflow" else ACTIVITY_POLLERS
    queue_type = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW if kind == "workflow" else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=queue_type,
    )
    try:
        described = await client.workflow_service.describe_task_queue(request)
    except RPCError as error:
        return _unknown(check, error, f"describing task queue {task_queue!r}")
    since = datetime.now(UTC) - POLLER_FRESH
    fresh = sorted(
        poller.identity
        for poller in described.pollers
        if poller.HasField("last_access_time") and poller.last_access_time.ToDatetime(tzinfo=UTC) >= since
    )
    where = f"task queue {task_queue!r} in namespace {client.namespace}"
    if fresh:
        return _result(
            check, CheckStatus.PASS, f"{len(fresh)} worker(s) polling {where} for {kind} tasks: " + ", ".join(fresh)
        )
    return _result(
        check,
        CheckStatus.FAIL,
        f"no worker polled {where} for {kind} tasks in the last {int(POLLER_FRESH.total_seconds() // 60)} minutes",
        f"start the worker (`python worker.py`, or its container) with IRFLOW_TASK_QUEUE={task_queue} and the same "
        "TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE as the listener; if it runs, read its log for why it cannot poll",
    )


async def temporal_checks(client: Client, task_queue: str) -> list[CheckResult]:
    """Every Temporal-side check, in display order."""
    return [
        await search_attributes_check(client),
        await pollers_check(client, task_queue, "workflow"),
        await pollers_check(client, task_queue, "activity"),
    ]


def temporal_unreachable(reason: str) -> list[CheckResult]:
    """The Temporal-side checks when Temporal cannot be reached: none can tell."""
    return [
        _result(
            check,
            CheckStatus.UNKNOWN,
            reason,
            "start Temporal, or point TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY) at "
            "it, then check again",
        )
        for check in TITLES
    ]


# --- the one the ReadinessWorkflow runs, as an activity ---


@activity.defn
async def check_search_attributes(scope: ReadinessScope) -> CheckResult:
    return await search_attributes_check(activity.client())


def temporal_plan() -> list[PlannedCheck]:
    """The Temporal-side checks as the workflow runs them: the search attributes, once, in no account or region
    (not the pollers: see the module's docstring)."""
    return [
        PlannedCheck(
            activity=check_search_attributes.__name__,
            check=SEARCH_ATTRIBUTES,
            title=TITLES[SEARCH_ATTRIBUTES],
            scope=ReadinessScope(account_id="", region=""),
        )
    ]


def aws_plan(settings: IrflowSettings) -> list[PlannedCheck]:
    """Every AWS check in every scope, in display order (activities/readiness.py: a global check in the first scope
    only, its result naming the security account and no region)."""
    from activities.readiness import readiness_plan, readiness_scopes

    return [
        PlannedCheck(
            activity=check.__name__,
            check=check.check_id,
            title=check.title,
            required=check.required,
            scope=scope,
            account_id=settings.security_account_id if check.global_check else scope.account_id,
            region="" if check.global_check else scope.region,
        )
        for scope, checks in readiness_plan(readiness_scopes(settings))
        for check in checks
    ]


@activity.defn
def plan_readiness() -> ReadinessPlan:
    """Which check runs where, from the worker's settings: the AWS checks, then the Temporal-side checks."""
    return ReadinessPlan(checks=[*aws_plan(get_settings()), *temporal_plan()])


UNDECLARED: tuple = (check_search_attributes, plan_readiness)
