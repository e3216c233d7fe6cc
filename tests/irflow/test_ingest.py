"""`irflow ingest` / `starter.py FILE` in-process (`ingest_main`): finding files become incidents on the
configured task queue (nobody polls it here: the incidents are looked at, then terminated); a file with a bad
record is refused whole, one line per problem, and starts nothing. The processes themselves, with a worker,
are tested in tests/e2e/test_processes.py."""

from __future__ import annotations

import io
import json
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from irflow.devstack.demo import DemoWorkload, sample_finding
from irflow.ingest import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNREACHABLE, ingest_main
from irflow.intake.router import route
from irflow.models.finding import parse_guardduty
from irflow.models.incident import INCIDENT_WORKFLOW
from irflow.models.settings import get_settings
from tests.irflow.intake.listener_support import _asff_access_key_finding, _sns
from tests.support import free_port

FINDING_TYPE = "Backdoor:EC2/C&CActivity.B!DNS"  # the sample finding's
MISSING_INSTANCE = "i-0aaaaaaaaaaaaaaaa"


class Ingesting:
    """The environment `irflow ingest` runs in: the session's dev server, a task queue of its own."""

    def __init__(self, client: Client, workload: DemoWorkload, task_queue: str, folder: Path) -> None:
        self.client = client
        self.workload = workload
        self.task_queue = task_queue
        self.folder = folder

    def finding(self, instance_id: str | None = None) -> dict:
        return sample_finding(instance_id or self.workload.instance_id, self.workload.account_id, self.workload.region)

    def file(self, name: str, *documents: dict | str) -> str:
        path = self.folder / name
        path.write_text("\n".join(d if isinstance(d, str) else json.dumps(d) for d in documents) + "\n")
        return str(path)

    def workflow_id(self, event: dict) -> str:
        return route(parse_guardduty(event).finding).incident_key

    async def exists(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True


@pytest.fixture
async def ingesting(dev_env, workload, monkeypatch, tmp_path):
    task_queue = f"irflow-ingest-test-{uuid.uuid4().hex[:10]}"  # nobody polls it: incidents stay as started
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.delenv("TEMPORAL_NAMESPACE", raising=False)
    monkeypatch.setenv("IRFLOW_TASK_QUEUE", task_queue)
    get_settings.cache_clear()
    context = Ingesting(dev_env.client, workload, task_queue, tmp_path)
    yield context
    for instance_id in (workload.instance_id, workload.other_instance_id, MISSING_INSTANCE):
        handle = dev_env.client.get_workflow_handle(context.workflow_id(context.finding(instance_id)))
        try:
            await handle.terminate(reason="test over")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise


async def test_a_finding_file_starts_an_incident_on_the_configured_task_queue(ingesting, capsys) -> None:
    event = ingesting.finding()
    path = ingesting.file("finding.json", event)
    assert await ingest_main([path]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""
    [line] = out.splitlines()
    workflow_id = ingesting.workflow_id(event)
    assert line.startswith("started incident ") and line.endswith(f" (workflow {workflow_id}) for {FINDING_TYPE}")
    incident_id = line.removeprefix("started incident ").split(" ", 1)[0]
    described = await ingesting.client.get_workflow_handle(workflow_id).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert described.workflow_type == INCIDENT_WORKFLOW
    assert described.task_queue == ingesting.task_queue
    assert (await described.memo())["incident_id"] == incident_id
    assert ingesting.workload.instance_id in incident_id


async def test_json_output_lists_each_finding_started_or_joined(ingesting, capsys) -> None:
    event = ingesting.finding()
    other = ingesting.finding(ingesting.workload.other_instance_id)
    files = [
        ingesting.file("first.json", event),
        ingesting.file("again.json", event),
        ingesting.file("other.json", other),
    ]
    assert await ingest_main(files, as_json=True) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""
    submissions = json.loads(out)  # nothing but the JSON on standard output
    assert [sorted(s) for s in submissions] == [
        ["finding_id", "finding_type", "incident_id", "joined", "workflow_id"]
    ] * 3
    first, again, elsewhere = submissions
    assert first["workflow_id"] == again["workflow_id"] == ingesting.workflow_id(event)
    assert (first["joined"], again["joined"], elsewhere["joined"]) == (False, True, False)
    assert again["incident_id"] == first["incident_id"]  # the same finding joins the incident it opened
    assert elsewhere["workflow_id"] == ingesting.workflow_id(other) != first["workflow_id"]
    assert first["finding_id"] == event["detail"]["id"] and first["finding_type"] == FINDING_TYPE
    for workflow_id in (first["workflow_id"], elsewhere["workflow_id"]):
        assert await ingesting.exists(workflow_id)


async def test_a_file_with_bad_records_is_refused_whole_with_one_line_per_problem(ingesting, capsys) -> None:
    good = ingesting.finding()
    path = ingesting.file(
        "mixed.jsonl",
        good,
        "{ this line is not json",
        {"hello": "world"},
        ingesting.finding(MISSING_INSTANCE),
    )
    assert await ingest_main([path]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    assert "line 2 is not JSON" in lines[0]
    assert "not a GuardDuty finding" in lines[1]
    w = ingesting.workload
    assert lines[2].endswith(f"instance {MISSING_INSTANCE} does not exist in {w.account_id}/{w.region}")
    assert not await ingesting.exists(ingesting.workflow_id(good))  # the good record did not start either


async def test_findings_from_untrusted_products_or_other_accounts_are_refused(ingesting, capsys) -> None:
    """A file is not a queue (no sender, no topic to check), but an untrusted product or an account irflow
    does not answer for is refused as on the queue, and the file with it."""
    w = ingesting.workload
    good = ingesting.finding()
    default_product = f"arn:aws:securityhub:us-east-1:{w.account_id}:product/{w.account_id}/default"
    imported = _asff_access_key_finding(w.iam_user, w.access_key_id, w.account_id, product_arn=default_product)
    elsewhere = sample_finding(w.instance_id, "210987654321", w.region, finding_id="7" * 32)
    sns = _sns("arn:aws:sns:us-east-1:999999999999:any-topic", good)  # the topic is not checked in a file
    assert await ingest_main([ingesting.file("untrusted.jsonl", imported, elsewhere, sns)]) == EXIT_BAD_INPUT
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert default_product in lines[0] and "does not trust" in lines[0]
    assert "account 210987654321" in lines[1] and "does not answer for" in lines[1]
    assert not await ingesting.exists(ingesting.workflow_id(good))


async def test_an_event_from_a_forged_source_is_refused_as_on_the_queue(ingesting, capsys) -> None:
    """A file is not a queue, but an EventBridge event in it must come from the service that publishes its
    detail-type, as on the queue: `"source": "custom.guardduty"` is no GuardDuty finding."""
    good = ingesting.finding()
    forged = {**ingesting.finding(), "source": "custom.guardduty"}
    assert await ingest_main([ingesting.file("forged.jsonl", good, forged)]) == EXIT_BAD_INPUT
    [line] = capsys.readouterr().err.splitlines()
    assert "'custom.guardduty'" in line and "only 'aws.guardduty' publishes these" in line
    assert not await ingesting.exists(ingesting.workflow_id(good))


async def test_one_bad_file_refuses_the_good_files_handed_in_with_it(ingesting, capsys) -> None:
    good = ingesting.finding()
    good_file = ingesting.file("good.json", good)
    bad_file = ingesting.file("bad.json", "{ not json")
    missing_file = str(ingesting.folder / "missing.json")
    assert await ingest_main([good_file, bad_file, missing_file]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {bad_file}: not JSON: Expecting property name enclosed in double quotes at line 1",
        f"error: {missing_file}: cannot read: No such file or directory",
    ]
    assert not await ingesting.exists(ingesting.workflow_id(good))


async def test_standard_input_is_read_for_a_dash(ingesting, capsys, monkeypatch) -> None:
    event = ingesting.finding()
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(event, indent=2)))
    assert await ingest_main(["-"], as_json=True) == EXIT_OK
    [submission] = json.loads(capsys.readouterr().out)
    assert submission["workflow_id"] == ingesting.workflow_id(event) and not submission["joined"]


async def test_without_verification_a_finding_about_a_missing_instance_still_starts(ingesting, capsys) -> None:
    event = ingesting.finding(MISSING_INSTANCE)
    assert await ingest_main([ingesting.file("unchecked.json", event)], verify=False) == EXIT_OK
    assert capsys.readouterr().err == ""
    assert await ingesting.exists(ingesting.workflow_id(event))


async def test_no_files_is_the_usage_line(capsys) -> None:
    assert await ingest_main([]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: ") and err.count("\n") == 1


async def test_an_unreachable_temporal_is_one_line_and_exit_2(workload, monkeypatch, tmp_path, capsys) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    path = tmp_path / "finding.json"
    path.write_text(json.dumps(sample_finding(workload.instance_id, workload.account_id, workload.region)))
    assert await ingest_main([str(path)]) == EXIT_UNREACHABLE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: cannot reach Temporal at {address}: connection refused\n"
