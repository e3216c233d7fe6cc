"""How an incident is found from what a person typed: the whole incident id, the workflow id, or the short id
`irflow list` shows (any 4 or more of its leading characters), against a real Temporal dev server."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import typer
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from typer.testing import CliRunner

from irflow.cli import app
from irflow.cli.common import Ambiguous, NotFound, decision_proof, find_incident, incident_handle, match_short_id
from irflow.models.incident import incident_hash, short_id
from irflow.models.proof import DecisionProof, check_proof
from irflow.models.settings import get_settings
from workflows import search_attributes as sa

RUNNER = CliRunner()
KEY = "ec2-123456789012-us-east-1-i-0123456789abcdef0"
INCIDENT = f"{KEY}-20261207T125819Z"


def _sharing_a_prefix(length: int, salt: str) -> tuple[str, str]:
    """Two incident ids (distinct resources) whose short ids start with the same `length` characters."""
    seen: dict[str, str] = {}
    for n in itertools.count():
        incident = f"ec2-123456789012-us-east-1-i-{salt}{n:08x}-20261207T125819Z"
        prefix = short_id(incident)[:length]
        if prefix in seen:
            return seen[prefix], incident
        seen[prefix] = incident
    raise AssertionError("unreachable")


def test_a_short_id_is_eight_hex_characters_of_the_incident_ids_sha256():
    assert short_id(INCIDENT) == hashlib.sha256(INCIDENT.encode()).hexdigest()[:8]
    assert short_id(INCIDENT) == short_id(str(INCIDENT)), "the same incident, the same short id, every time"
    # the same resource's next incident (another opening time) is another short id
    assert short_id(f"{KEY}-20261208T090000Z") != short_id(INCIDENT)


def test_four_or_more_leading_characters_in_either_case_name_the_incident():
    ids = [INCIDENT, *(f"{KEY}-2026120{day}T000000Z" for day in range(1, 7))]
    digest = hashlib.sha256(INCIDENT.encode()).hexdigest()
    for prefix in (short_id(INCIDENT), short_id(INCIDENT)[:4], short_id(INCIDENT).upper(), digest):
        assert match_short_id(prefix, ids) == INCIDENT


def test_a_prefix_several_incidents_share_is_refused_in_one_line_naming_them():
    first, second = _sharing_a_prefix(4, "0aa")
    with pytest.raises(Ambiguous) as refused:
        match_short_id(short_id(first)[:4], [first, second, INCIDENT])
    message = str(refused.value)
    assert "\n" not in message and "ambiguous" in message
    assert f"{short_id(first)} {first}" in message and f"{short_id(second)} {second}" in message
    assert INCIDENT not in message
    assert match_short_id(short_id(first), [first, second]) == first, "the whole short id still tells them apart"


def test_a_short_id_nobody_has_is_not_found():
    unknown = "0000"
    assert not short_id(INCIDENT).startswith(unknown)
    with pytest.raises(NotFound, match=f"no incident with short id {unknown}"):
        match_short_id(unknown, [INCIDENT])


@pytest.mark.parametrize("command", ["show", "report", "watch", "approve", "reject", "release", "note"])
def test_every_command_that_takes_an_incident_documents_the_short_id(command):
    result = RUNNER.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (
        "short id `irflow list` shows: 4 or more of its leading characters, refused when several incidents share them"
        in " ".join(result.stdout.split())
    )


async def _open_without_worker(client, incident_id: str) -> tuple[str, str]:
    """An IncidentWorkflow run nobody works on, started with the memo and the hash the listener gives every
    incident: enough for visibility (how ids are resolved), cheap to end."""
    workflow_id = incident_id.rsplit("-", 1)[0]
    handle = await client.start_workflow(
        "IncidentWorkflow",
        id=workflow_id,
        task_queue=f"nobody-{uuid.uuid4().hex}",
        memo={"incident_id": incident_id},
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.INCIDENT_HASH, incident_hash(incident_id))]),
    )
    return workflow_id, handle.result_run_id


async def _visible(client, workflow_ids: list[str], timeout: float = 30) -> None:
    query = " OR ".join(f"WorkflowId = '{w}'" for w in workflow_ids)
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if len([e async for e in client.list_workflows(query)]) == len(workflow_ids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not listed after {timeout}s: {workflow_ids}")


async def test_short_ids_resolve_against_a_real_dev_server(dev_env):
    client = dev_env.client
    address = client.service_client.config.target_host
    salt = uuid.uuid4().hex[:3]  # runs of this session's other tests never share these resources
    first, second = _sharing_a_prefix(6, salt)
    alone = next(
        incident
        for n in itertools.count()
        if short_id(incident := f"ec2-123456789012-us-east-1-i-{salt}f{n:08x}-20261207T125819Z")[:5]
        not in (short_id(first)[:5], short_id(second)[:5])
    )
    runs = {incident: await _open_without_worker(client, incident) for incident in (first, second, alone)}
    try:
        await _visible(client, [workflow_id for workflow_id, _ in runs.values()])
        for typed in (short_id(alone), short_id(alone)[:5], alone, runs[alone][0]):
            handle = await incident_handle(client, typed)
            assert handle.id == runs[alone][0]
            found, incident_id = await find_incident(client, typed)
            assert (found.id, incident_id) == (runs[alone][0], alone), "the incident id, from the memo"
        handle = await incident_handle(client, short_id(first))
        assert (handle.id, handle.run_id) == runs[first], "a short id names one run: that incident"

        env = {"TEMPORAL_ADDRESS": address}
        ambiguous = await asyncio.to_thread(
            RUNNER.invoke, app, ["approve", short_id(first)[:6], "--as", "alice"], env=env
        )
        assert ambiguous.exit_code == 1, ambiguous.output
        lines = ambiguous.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: short id {short_id(first)[:6]} is ambiguous")
        assert first in lines[0] and second in lines[0] and ambiguous.stdout == ""

        unknown = "0123456789abcdef0123"  # 80 bits: no incident of this session has it
        missing = await asyncio.to_thread(RUNNER.invoke, app, ["note", unknown, "--as", "dave", "hello"], env=env)
        assert missing.exit_code == 3 and missing.stderr == f"error: no incident with short id {unknown}\n"
    finally:
        for workflow_id, run_id in runs.values():
            await client.get_workflow_handle(workflow_id, run_id=run_id).terminate("test over")


# --- decisions are signed with the caller's own AWS credentials ---


def test_a_decision_is_signed_with_the_profiles_keys_for_the_configured_sts(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.write_text("[alice]\naws_access_key_id = AKIAEXAMPLEALICE0001\naws_secret_access_key = secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("IRFLOW_PROOF_STS_ENDPOINT_URL", "http://127.0.0.1:4599")
    get_settings.cache_clear()

    proof = DecisionProof.model_validate(decision_proof("alice", INCIDENT, "approve", "confirmed", "stop"))
    signed = check_proof(
        proof,
        incident_id=INCIDENT,
        verb="approve",
        comment="confirmed",
        choice="stop",
        now=datetime.now(UTC),
        max_age=timedelta(seconds=300),
        host="127.0.0.1:4599",
    )
    assert signed.access_key_id == "AKIAEXAMPLEALICE0001" and "secret" not in str(proof.headers)
    with pytest.raises(typer.Exit) as failed:
        decision_proof("nobody", INCIDENT, "approve", "", None)
    assert failed.value.exit_code == 1
