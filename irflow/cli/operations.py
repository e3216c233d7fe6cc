"""Commands for whoever runs irflow: least-privilege IAM, the Temporal namespace, the codec server."""

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


@app.command("codec-server")
def codec_server(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8888,
) -> None:
    """Serve Temporal's codec-server endpoints (/encode, /decode) over IRFLOW_PAYLOAD_KMS_KEY_ID, for the Temporal
    UI (--ui-codec-endpoint) and `temporal workflow show --codec-endpoint`. CORS: IRFLOW_CODEC_SERVER_ORIGINS;
    bearer token: IRFLOW_CODEC_SERVER_TOKEN."""
    from irflow.codec_server import make_server
    from irflow.models.settings import get_settings

    settings = get_settings()
    if not settings.payload_kms_key_id:
        console.print("error: IRFLOW_PAYLOAD_KMS_KEY_ID is not set: there is nothing to decode", style="red")
        raise typer.Exit(2)
    server = make_server(
        settings.payload_kms_key_id, host, port, settings.codec_server_origins, settings.codec_server_token
    )
    console.print(f"codec server on {server.url} for {', '.join(settings.codec_server_origins) or 'no origin'}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
