"""`irflow verify`: re-check an incident's evidence, its manifest's chain and signature (irflow/custody.py).

Exit codes as every command's (0 all checks passed; 2 Temporal unreachable; 3 no such incident), and
5 when any check failed: each failure names the object (key@version) and what failed.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from irflow.cli.common import AS_JSON, IDENT, app, console, fail, incident_state, print_json, run

EXIT_UNVERIFIED = 5
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def verify_state(state, allow_unsigned: bool, signing_key: str | None):
    """The checks of one incident's evidence, with the evidence bucket's S3 client and KMS."""
    import boto3

    from irflow.custody import Verifier, verify_evidence
    from irflow.models.settings import get_settings

    settings = get_settings()
    region = settings.evidence_region or None
    verifier = Verifier(
        boto3.client("s3", region_name=region),
        boto3.client("kms", region_name=region),
        evidence_key_id=settings.evidence_kms_key_id,
        signing_key_id=signing_key if signing_key is not None else settings.manifest_signing_key_id,
    )
    return verify_evidence(verifier, state.incident_id, state.evidence, allow_unsigned)


@app.command()
def verify(
    ident: IDENT,
    as_json: AS_JSON = False,
    allow_unsigned: Annotated[
        bool, typer.Option("--allow-unsigned", help="an unsigned manifest is a warning, not a failure")
    ] = False,
    signing_key: Annotated[
        str | None,
        typer.Option(help="the KMS key a manifest must be signed with; default IRFLOW_MANIFEST_SIGNING_KEY_ID"),
    ] = None,
) -> None:
    """Re-read every evidence object of an incident by version id and re-hash it; check its Object Lock,
    retention and KMS key, the manifest's hash chain and its signature. Exit 5 on any failure."""
    from botocore.exceptions import BotoCoreError, ClientError

    state = run(lambda client: incident_state(client, ident))
    try:
        checks = verify_state(state, allow_unsigned, signing_key)
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot read the evidence of {state.incident_id}: {error}", EXIT_UNVERIFIED)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        print_json({"incident_id": state.incident_id, "verified": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        table = Table("CHECK", "STATUS", box=None, pad_edge=False)
        table.add_column("OBJECT", overflow="fold")
        table.add_column("DETAIL", overflow="fold")
        for check in checks:
            table.add_row(check.check, f"[{_STYLE[check.status]}]{check.status}[/]", check.subject, check.detail)
        console.print(table)
        for check in failed:  # whole, one line each (never wrapped: scripts grep them)
            console.print(f"FAILED {check.check} {check.subject}: {check.detail}", soft_wrap=True, markup=False)
        verdict = f"{len(failed)} check(s) failed" if failed else "every check passed"
        console.print(f"{state.incident_id}: {len(checks)} checks, {verdict}", soft_wrap=True)
    if failed:
        raise typer.Exit(EXIT_UNVERIFIED)
