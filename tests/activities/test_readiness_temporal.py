"""The Temporal-side readiness checks against a real dev server: search attributes registered in the namespace, a
worker polling the task queue for workflow and for activity tasks; each with the evidence and a fix. The scheduled
workflow's plan runs the first only: it runs on the queue the pollers check."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.readiness_temporal import (
    ACTIVITY_POLLERS,
    SEARCH_ATTRIBUTES,
    WORKFLOW_POLLERS,
    check_search_attributes,
    plan_readiness,
    pollers_check,
    search_attributes_check,
    temporal_checks,
    temporal_unreachable,
)
from irflow.models.readiness import CheckStatus, ReadinessScope
from irflow.temporal_client import ensure_search_attributes
from tests.support import running_worker
from workflows import search_attributes as sa

ANYWHERE = ReadinessScope(account_id="", region="")


async def _new_namespace(client: Client) -> Client:
    name = f"readiness-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=int(timedelta(days=1).total_seconds()))
        )
    )
    return await Client.connect(client.service_client.config.target_host, namespace=name)


async def test_search_attributes_fail_in_a_namespace_without_them_and_pass_once_registered(dev_env):
    fresh = await _new_namespace(dev_env.client)
    missing = await search_attributes_check(fresh)
    assert missing.status == CheckStatus.FAIL and missing.required
    assert all(key.name in missing.evidence for key in sa.ALL) and fresh.namespace in missing.evidence
    assert "irflow setup-namespace" in missing.fix

    await ensure_search_attributes(fresh)
    present = await search_attributes_check(fresh)
    assert (present.status, present.fix) == (CheckStatus.PASS, "")
    assert present.key == f"{SEARCH_ATTRIBUTES}@-/-"


async def test_search_attributes_are_unknown_when_the_namespace_cannot_be_read(dev_env):
    elsewhere = await Client.connect(dev_env.client.service_client.config.target_host, namespace="no-such-namespace")
    unknown = await search_attributes_check(elsewhere)
    assert unknown.status == CheckStatus.UNKNOWN and "no-such-namespace" in unknown.evidence and unknown.fix


async def test_pollers_fail_on_a_queue_no_worker_polls_and_pass_while_one_does(dev_env):
    client = dev_env.client
    idle = f"nobody-{uuid.uuid4().hex[:8]}"
    for kind in ("workflow", "activity"):
        result = await pollers_check(client, idle, kind)
        assert result.status == CheckStatus.FAIL and idle in result.evidence and kind in result.evidence
        assert f"IRFLOW_TASK_QUEUE={idle}" in result.fix

    async with running_worker(client) as settings:
        # A worker polls a moment after it starts: the first check of a just-started worker may see none yet.
        for _ in range(200):
            checked = await temporal_checks(client, settings.task_queue)
            if all(r.status == CheckStatus.PASS for r in checked):
                break
            await asyncio.sleep(0.05)
        assert [(r.check, r.status) for r in checked] == [
            (SEARCH_ATTRIBUTES, CheckStatus.PASS),
            (WORKFLOW_POLLERS, CheckStatus.PASS),
            (ACTIVITY_POLLERS, CheckStatus.PASS),
        ]
        assert "1 worker(s) polling" in checked[1].evidence and settings.task_queue in checked[1].evidence


async def test_the_workflow_checks_the_search_attributes_and_leaves_the_pollers_to_preflight(dev_env, workload):
    client = dev_env.client
    planned = [p.check for p in plan_readiness().checks]
    assert planned.count(SEARCH_ATTRIBUTES) == 1 and planned[-1] == SEARCH_ATTRIBUTES
    assert not {WORKFLOW_POLLERS, ACTIVITY_POLLERS} & set(planned), "a run would always find its own worker"
    preflight = [r.check for r in await temporal_checks(client, f"nobody-{uuid.uuid4().hex[:8]}")]
    assert preflight == [SEARCH_ATTRIBUTES, WORKFLOW_POLLERS, ACTIVITY_POLLERS]

    fresh = await _new_namespace(client)
    for namespace, status in ((fresh, CheckStatus.FAIL), (client, CheckStatus.PASS)):
        result = await ActivityEnvironment(namespace).run(check_search_attributes, ANYWHERE)
        assert (result.check, result.status) == (SEARCH_ATTRIBUTES, status)


def test_unreachable_temporal_leaves_every_temporal_check_unknown_with_the_reason():
    results = temporal_unreachable("cannot reach Temporal at 127.0.0.1:1: connection refused")
    assert [r.check for r in results] == [SEARCH_ATTRIBUTES, WORKFLOW_POLLERS, ACTIVITY_POLLERS]
    assert {r.status for r in results} == {CheckStatus.UNKNOWN}
    assert all("connection refused" in r.evidence and "TEMPORAL_ADDRESS" in r.fix for r in results)
