"""`irflow ingest` and `starter.py`: findings from files or standard input into incidents."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from temporalio.service import RPCError

from irflow.intake.documents import read_findings
from irflow.intake.router import route
from irflow.intake.submit import Submission, submit
from irflow.intake.trust import FILE, AccountsUnknown, TrustPolicy, answered_accounts, refusal
from irflow.models.finding import FindingRejected, ParsedFinding
from irflow.models.settings import get_settings
from irflow.temporal_client import TemporalUnreachable, connect

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def verify_resource(parsed: ParsedFinding) -> str | None:
    """Pre-flight for findings handed in by a person: does the resource exist? (None means yes.)"""
    from activities.verify import resource_problem  # boto3 only where a file is ingested

    return resource_problem(parsed.finding)


async def ingest_main(paths: list[str], as_json: bool = False, verify: bool = True) -> int:
    if not paths:
        print("usage: starter.py FILE [FILE ...]   (- for standard input)", file=sys.stderr)
        return EXIT_BAD_INPUT
    accepted: list[tuple[str, ParsedFinding]] = []
    problems: list[str] = []
    trust: TrustPolicy | None = None
    for path in paths:
        try:
            results = read_findings(_read(path))
        except OSError as error:
            problems.append(f"{path}: cannot read: {error.strerror or error}")
            continue
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
            continue
        except FindingRejected as rejected:
            problems.append(f"{path}: {rejected.reason}")
            continue
        for result, arrival in results:
            if isinstance(result, FindingRejected):
                problems.append(f"{path}: {result.reason}")
                continue
            if trust is None:
                try:
                    trust = TrustPolicy.from_settings(get_settings(), *answered_accounts(get_settings()))
                except AccountsUnknown as error:
                    print(f"error: {error}", file=sys.stderr)
                    return EXIT_UNREACHABLE
            # An operator's file is not a queue: its events' sources, its product and its account are checked,
            # not a sender or a topic.
            untrusted = refusal(result, arrival, FILE, trust)
            if untrusted:
                problems.append(f"{path}: {untrusted.reason}")
                continue
            try:
                route(result.finding, get_settings().playbook_overrides)
            except FindingRejected as rejected:
                problems.append(f"{path}: {rejected.reason}")
                continue
            problem = verify_resource(result) if verify else None
            if problem:
                problems.append(f"{path}: {problem}")
                continue
            accepted.append((path, result))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        # A file with a bad record is refused whole: fix it and ingest again, nothing half-done.
        return EXIT_BAD_INPUT
    settings = get_settings()
    try:
        client = await connect()
        submissions: list[Submission] = [
            await submit(client, parsed, settings, origin=path) for path, parsed in accepted
        ]
    except TemporalUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except RPCError as error:
        print(f"error: Temporal refused the incident: {' '.join(error.message.split())[:200]}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if as_json:
        print(json.dumps([asdict(s) for s in submissions], indent=2))
    else:
        for s in submissions:
            verb = "joined running incident" if s.joined else "started incident"
            print(f"{verb} {s.incident_id} (workflow {s.workflow_id}) for {s.finding_type}")
    return EXIT_OK
