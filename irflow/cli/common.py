"""What every `irflow` command shares: the Typer app, the Temporal connection, how an incident is found
from what the analyst typed, and how errors and JSON are printed.

Exit codes: 0 done; 1 bad input or the incident refused the request; 2 Temporal unreachable;
3 no such incident; 4 timed out.
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

from irflow.models.incident import IncidentState
from irflow.temporal_client import TemporalUnreachable, connect

app = typer.Typer(help="irflow: automated incident response for AWS, on Temporal.", no_args_is_help=True)
console = Console()

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_TIMEOUT = 1, 2, 3, 4
T = TypeVar("T")

_INCIDENT_SUFFIX = re.compile(r"-(\d{8}T\d{6}Z)$")


class NotFound(Exception):
    pass


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


async def incident_handle(client: Client, ident: str) -> WorkflowHandle:
    """Accept a workflow id (the incident key) or an incident id (key plus opening time)."""
    match = _INCIDENT_SUFFIX.search(ident)
    if match:
        key = ident[: match.start()]
        async for execution in client.list_workflows(f"WorkflowId = '{key}'"):
            memo = await execution.memo()
            if memo.get("incident_id") == ident:
                return client.get_workflow_handle(key, run_id=execution.run_id)
        raise NotFound(f"no incident {ident}")
    handle = client.get_workflow_handle(ident)
    try:
        await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no incident {ident}") from None
        raise
    return handle


async def incident_state(client: Client, ident: str) -> IncidentState:
    handle = await incident_handle(client, ident)
    return await handle.query("current_state", result_type=IncidentState)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


BY = Annotated[str, typer.Option("--as", help="who decides (a configured approver, IRFLOW_APPROVERS)")]
AS_JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
IDENT = Annotated[str, typer.Argument(metavar="ID", help="incident id or workflow id")]
