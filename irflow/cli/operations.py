"""Commands for whoever runs irflow: least-privilege IAM, the Temporal namespace."""

from __future__ import annotations

from typing import Annotated

import typer

from irflow.cli.common import app, console, print_json, run


@app.command()
def policy(
    member: Annotated[bool, typer.Option("--member", help="the responder role's policy in member accounts")] = False,
    member_template: Annotated[
        bool, typer.Option("--member-template", help="CloudFormation for the responder role in member accounts")
    ] = False,
) -> None:
    """Print least-privilege IAM, generated from the activities' declarations: the worker's policy (default),
    the member accounts' responder policy, or the responder role's CloudFormation template."""
    from irflow.iam_policy import member_policy, member_role_template, worker_policy

    print_json(member_role_template() if member_template else member_policy() if member else worker_policy())


@app.command("setup-namespace")
def setup_namespace() -> None:
    """Register irflow's search attributes in the Temporal namespace (idempotent)."""
    from irflow.temporal_client import ensure_search_attributes

    added = run(ensure_search_attributes)
    console.print(f"search attributes added: {', '.join(added)}" if added else "search attributes already present")
