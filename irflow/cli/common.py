"""What every `irflow` command shares: the Typer app, the Temporal connection, how an incident is found
from what the analyst typed, and how errors and JSON are printed.

Every command that takes an incident (show, report, watch, approve, reject, release, note) accepts:
- the incident id: the incident key plus the time it opened,
  ec2-123456789012-us-east-1-i-0123456789abcdef0-20261207T125819Z;
- the workflow id: the incident key alone, ec2-123456789012-us-east-1-i-0123456789abcdef0 (the resource's
  latest incident);
- the short id `irflow list` and `irflow show` print, e.g. 3f9a1c2e: the first 8 hex characters of the
  SHA-256 of the incident id, so an incident's short id never changes. Any 4 or more leading characters of
  it will do; a prefix that several incidents' short ids start with is refused (exit 1), naming them.

Exit codes: 0 done; 1 bad input (an ambiguous short id too) or the incident refused the request;
2 Temporal unreachable; 3 no such incident; 4 timed out.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from irflow.models.incident import INCIDENT_WORKFLOW, IncidentState, incident_hash, short_id
from irflow.temporal_client import TemporalUnreachable, connect
from irflow.visibility import find_incident_run, quoted
from workflows import search_attributes as sa

app = typer.Typer(
    help="irflow: automated incident response for AWS, on Temporal. Commands that take an ID accept the incident id, "
    "the workflow id, or the short id `irflow list` shows.",
    no_args_is_help=True,
)
console = Console()

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_TIMEOUT = 1, 2, 3, 4
T = TypeVar("T")

_INCIDENT_SUFFIX = re.compile(r"-(\d{8}T\d{6}Z)$")
# Incident keys always hold a '-' (kind-account-region-...), so a bare run of hex digits is a short id.
_SHORT_ID = re.compile(r"[0-9a-fA-F]{4,64}")
_CANDIDATES_SHOWN = 10


class NotFound(Exception):
    pass


class Ambiguous(Exception):
    """A short id (prefix) that several incidents' short ids start with."""


def run(work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            client = await connect()
        except TemporalUnreachable as error:
            fail(str(error), EXIT_UNREACHABLE)
        return await work(client)

    try:
        return asyncio.run(main())
    except NotFound as missing:
        fail(str(missing), EXIT_NOT_FOUND)
    except Ambiguous as ambiguous:
        fail(str(ambiguous), EXIT_REFUSED)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            fail(f"not found: {error.message}", EXIT_NOT_FOUND)
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            fail(f"cannot reach Temporal: {' '.join(error.message.split())[:160]}", EXIT_UNREACHABLE)
        raise


def fail(message: str, code: int) -> NoReturn:
    """One line on standard error (never wrapped: scripts grep it), then the exit code."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def match_short_id(prefix: str, incident_ids: list[str]) -> str:
    """The one incident id whose short id starts with `prefix`; NotFound or Ambiguous (naming them) otherwise."""
    wanted = prefix.lower()
    matches = sorted({i for i in incident_ids if incident_hash(i).startswith(wanted)})
    if not matches:
        raise NotFound(f"no incident with short id {prefix}")
    if len(matches) > 1:
        named = ", ".join(f"{short_id(i)} {i}" for i in matches[:_CANDIDATES_SHOWN])
        more = f" and {len(matches) - _CANDIDATES_SHOWN} more" if len(matches) > _CANDIDATES_SHOWN else ""
        raise Ambiguous(
            f"short id {prefix} is ambiguous, {len(matches)} incidents match: {named}{more}; "
            "give more characters or the whole incident id"
        )
    return matches[0]


async def _by_short_id(client: Client, prefix: str) -> tuple[WorkflowHandle, str]:
    # Every incident carries its hash as a search attribute: one prefix query finds the candidates among the
    # incidents Temporal still keeps (the namespace's retention), the same ones `irflow list` shows.
    runs: dict[str, tuple[str, str | None]] = {}
    query = f"WorkflowType = '{INCIDENT_WORKFLOW}' AND {sa.INCIDENT_HASH.name} STARTS_WITH {quoted(prefix.lower())}"
    async for execution in client.list_workflows(query):
        memo = await execution.memo()
        runs.setdefault(memo.get("incident_id") or execution.id, (execution.id, execution.run_id))
    found = match_short_id(prefix, list(runs))
    workflow_id, run_id = runs[found]
    return client.get_workflow_handle(workflow_id, run_id=run_id), found


async def find_incident(client: Client, ident: str) -> tuple[WorkflowHandle, str]:
    """The incident's handle and its incident id, from an incident id (key plus opening time), a workflow id
    (the incident key: its latest incident) or a short id. The id comes from the workflow's memo: no query."""
    if _SHORT_ID.fullmatch(ident):
        return await _by_short_id(client, ident)
    match = _INCIDENT_SUFFIX.search(ident)
    if match:
        found = await find_incident_run(client, ident[: match.start()], ident)
        if found is None:
            raise NotFound(f"no incident {ident}")
        return found, ident
    handle = client.get_workflow_handle(ident)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no incident {ident}") from None
        raise
    return handle, str((await description.memo()).get("incident_id") or ident)


async def incident_handle(client: Client, ident: str) -> WorkflowHandle:
    """Accept an incident id (key plus opening time), a workflow id (the incident key) or a short id."""
    handle, _ = await find_incident(client, ident)
    return handle


async def incident_state(client: Client, ident: str) -> IncidentState:
    handle = await incident_handle(client, ident)
    return await handle.query("current_state", result_type=IncidentState)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


BY = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="demo mode only (IRFLOW_DECISIONS_REQUIRE_PROOF=false): decide as this name, unsigned; otherwise the "
        "decision is signed with your AWS credentials and you are who they say",
    ),
]
PROFILE = Annotated[
    str | None, typer.Option("--profile", help="the AWS profile to sign the decision with (default: AWS_PROFILE)")
]


def decision_proof(profile: str | None, incident_id: str, verb: str, words: str, choice: str | None) -> dict[str, Any]:
    """A proof of who decides, signed with the caller's own AWS credentials (irflow.decision_proof) for the STS
    endpoint the worker verifies with; the secret key never leaves this process."""
    import boto3
    from botocore.exceptions import BotoCoreError

    from irflow.decision_proof import sign_decision, sts_endpoint_url
    from irflow.models.settings import get_settings

    try:
        session = boto3.session.Session(profile_name=profile)
        proof = sign_decision(
            session,
            sts_endpoint_url(get_settings(), session),
            incident_id=incident_id,
            verb=verb,
            comment=words,
            choice=choice,
        )
    except BotoCoreError as error:
        fail(f"cannot sign the decision with your AWS credentials: {error} (--profile, or --as in demo mode)", 1)
    return proof.model_dump(mode="json")


AS_JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
IDENT = Annotated[
    str,
    typer.Argument(
        metavar="ID",
        help="incident id, workflow id, or the short id `irflow list` shows: 4 or more of its leading characters, "
        "refused when several incidents share them",
    ),
]
