"""`irflow list` and `irflow show` as a person reads them in an 80-column terminal (COLUMNS=80, which rich
honours), through the real commands (typer's runner) with what Temporal would have answered."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from irflow.cli import app, incidents
from irflow.cli.common import match_short_id
from irflow.devstack.demo import sample_finding
from irflow.models.evidence import EvidenceObject
from irflow.models.finding import parse_guardduty
from irflow.models.incident import (
    ActionRecord,
    ActionStatus,
    IncidentState,
    PendingDecision,
    Phase,
    Status,
    TimelineEntry,
    short_id,
)
from irflow.visibility import IncidentRow

RUNNER = CliRunner()
NARROW = {"COLUMNS": "80"}
OPENED = datetime(2026, 12, 7, 12, 58, 19, tzinfo=UTC)
INSTANCE = "i-0123456789abcdef0"
EC2_ID = f"ec2-123456789012-us-east-1-{INSTANCE}-20261207T125819Z"
BUCKET = "demo-public-assets-of-the-shop-team-in-production-123456789012"  # 63 characters, S3's longest
S3_ID = f"s3-123456789012-us-east-1-{BUCKET}-20261207T130102Z"
LONG_TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
MEMORY_ERROR = (
    "SSM command 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0 did not finish within 600 seconds on "
    f"{INSTANCE}: the agent is not running (InvalidInstanceId)"
)


def _row(incident_id: str, status: str, phase: str, severity: str, finding_type: str, resource: str) -> dict:
    """A row as `irflow list` reads one from visibility (irflow.visibility.IncidentRow)."""
    return IncidentRow(
        workflow_id=incident_id.rsplit("-", 1)[0],
        run_id="26091a29-2c00-4e57-b625-16361c65e15e",
        incident_id=incident_id,
        status=status,
        phase=phase,
        severity=severity,
        finding_type=finding_type,
        resource_id=resource,
        started=OPENED,
        workflow_status="RUNNING",
    ).model_dump()


ROWS = [
    _row(EC2_ID, "awaiting_decision", "analyst_decision", "HIGH", "Backdoor:EC2/C&CActivity.B!DNS", INSTANCE),
    _row(S3_ID, "escalated", "eradication_recovery", "CRITICAL", "Policy:S3/BucketAnonymousAccessGranted", BUCKET),
    _row(
        "iam-role-123456789012-us-east-1-h3f1d0c9b8a7e6f5d4c3b2-20261206T081500Z",
        "rolled_back",
        "done",
        "MEDIUM",
        LONG_TYPE,
        "demo-web-app",
    ),
]


def _state(incident_id: str = EC2_ID) -> IncidentState:
    finding = parse_guardduty(sample_finding(INSTANCE, now=OPENED)).finding
    question = f"{INSTANCE} is contained. Approve eradication, reject as a false positive, or release it?"
    return IncidentState(
        incident_id=incident_id,
        playbook="ec2-instance",
        status=Status.AWAITING_DECISION,
        phase=Phase.DECISION,
        severity=finding.severity,
        finding=finding,
        findings_absorbed=[finding],
        finding_deliveries=2,
        resource_id=INSTANCE,
        received_at=OPENED,
        pending_decision=PendingDecision(
            kind="eradication", question=question, options=["approve", "reject", "release"], since=OPENED
        ),
        timeline=[
            TimelineEntry(at=OPENED, phase=Phase.DETECTION, event=f"incident opened: {finding.type} on {INSTANCE}"),
            TimelineEntry(at=OPENED, phase=Phase.EVIDENCE, event=f"acquire_memory failed: {MEMORY_ERROR}"),
        ],
        actions=[
            ActionRecord(
                name="deregister_from_target_groups",
                phase=Phase.CONTAINMENT,
                status=ActionStatus.DONE,
                started_at=OPENED,
                finished_at=OPENED,
                result={"deregistered": ["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/1"]},
            ),
            ActionRecord(
                name="acquire_memory",
                phase=Phase.EVIDENCE,
                status=ActionStatus.FAILED,
                started_at=OPENED,
                finished_at=OPENED,
                error=MEMORY_ERROR,
            ),
        ],
        evidence=[
            EvidenceObject(
                kind="metadata",
                bucket="demo-irflow-evidence-123456789012",
                key=f"incidents/{incident_id}/instance/{INSTANCE}/metadata.json",
                sha256="9cb711a9d3668a55ee183278bdfe3074b4647a0a3e791df3e172f2a8721cf88f",
                size=7066,
                version_id="b8d1c15e-20db-4f55-95aa-49d9798dc640",
            )
        ],
    )


def _invoke(monkeypatch, answer, *args: str) -> str:
    """The command as a person runs it; `answer` is what Temporal would have returned to it."""
    monkeypatch.setattr(incidents, "run", lambda work: answer)
    result = RUNNER.invoke(app, list(args), env=NARROW)
    assert result.exit_code == 0, result.output
    return result.stdout


def _screen(output: str) -> list[str]:
    lines = [line.rstrip() for line in output.splitlines()]
    assert "…" not in output, "something was cut"
    return lines


def test_list_at_80_columns_shows_each_incident_whole_on_two_lines(monkeypatch):
    lines = _screen(_invoke(monkeypatch, ROWS, "list"))
    assert all(len(line) <= 80 for line in lines), "\n".join(line for line in lines if len(line) > 80)
    assert lines[0].startswith("3 incident(s)")
    assert lines[1].split() == ["ID", "STATUS", "PHASE", "SEVERITY", "STARTED", "(UTC)"]
    shown = [line.split()[0] for line in lines if line and not line.startswith(" ") and line != lines[0]][1:]
    assert shown == [short_id(row["incident_id"]) for row in ROWS]
    for row in ROWS:
        short = short_id(row["incident_id"])
        at = next(i for i, line in enumerate(lines) if line.startswith(short))
        assert lines[at].split() == [short, row["status"], row["phase"], row["severity"], "2026-12-07", "12:58"]
        # what the incident is about, below it: whole words, even where the pair wraps
        about = [line.strip() for line in lines[at + 1 : at + 3] if line.startswith(" ")]
        words = " ".join(about).split()
        assert row["resource_id"] in words and row["finding_type"] in words, about
        # the short id on screen is one a command accepts, and names this incident
        assert match_short_id(short, [r["incident_id"] for r in ROWS]) == row["incident_id"]


def test_list_of_nothing_says_so(monkeypatch):
    assert _screen(_invoke(monkeypatch, [], "list")) == [
        "0 incident(s), newest first; ID is the short id every command takes"
    ]


def test_list_age_is_a_window_like_stats_since(monkeypatch):
    assert _screen(_invoke(monkeypatch, [], "list", "--age", "2w"))[0].startswith("0 incident(s)")
    refused = RUNNER.invoke(app, ["list", "--age", "7 days"], env=NARROW)
    assert refused.exit_code == 2
    assert "--age '7 days': use a number and s, m, h, d or w" in " ".join(refused.output.replace("│", "").split())


def test_list_json_keeps_the_whole_ids_and_every_key(monkeypatch):
    listed = json.loads(_invoke(monkeypatch, ROWS, "list", "--json"))
    assert listed == json.loads(json.dumps(ROWS, default=str))
    assert set(listed[0]) == {
        "workflow_id",
        "run_id",
        "incident_id",
        "status",
        "phase",
        "severity",
        "finding_type",
        "resource_id",
        "started",
        "closed",
        "workflow_status",
    }


def test_show_at_80_columns_reads_whole(monkeypatch):
    state = _state()
    lines = _screen(_invoke(monkeypatch, state, "show", "ignored"))
    assert all(len(line) <= 80 for line in lines), "\n".join(line for line in lines if len(line) > 80)
    assert lines[0] == EC2_ID
    facts = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines[1:8] if line.strip()}
    assert lines[1].split() == ["short", "id", short_id(EC2_ID)]
    assert facts["status"] == "awaiting_decision · analyst_decision"
    assert facts["severity"] == "HIGH"
    assert facts["finding"] == f"Backdoor:EC2/C&CActivity.B!DNS ({state.finding.id})"
    assert facts["findings"] == "1 distinct, delivered 2 times"
    assert facts["resource"] == f"Instance {INSTANCE}"
    text = " ".join(" ".join(lines).split())  # what wraps still reads whole
    assert state.pending_decision.question in text
    assert f"irflow approve|reject|release {short_id(EC2_ID)} (--help for the rest)" in text
    assert f"failed acquire_memory evidence {MEMORY_ERROR}" in text, "a failure is shown whole"
    assert "done deregister_from_target_groups containment" in text
    assert "instance/i-0123456789abcdef0/metadata.json" in [line.strip() for line in lines]
    assert "sha256 9cb711a9d3668a55ee183278bdfe3074b4647a0a3e791df3e172f2a8721cf88f" in text
    assert "version b8d1c15e-20db-4f55-95aa-49d9798dc640" in text


def test_show_keeps_an_id_longer_than_the_terminal_on_one_line(monkeypatch):
    lines = _screen(_invoke(monkeypatch, _state(S3_ID), "show", "ignored"))
    assert lines[0] == S3_ID and len(S3_ID) > 80, "the terminal folds it on screen; a copy of the line is whole"
    assert lines[1].split() == ["short", "id", short_id(S3_ID)]


def test_show_json_is_the_incident_state(monkeypatch):
    state = _state()
    assert json.loads(_invoke(monkeypatch, state, "show", "ignored", "--json")) == state.model_dump(mode="json")


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.FAILED])
def test_show_of_a_closed_incident_offers_no_decision(monkeypatch, status):
    state = _state().model_copy(update={"status": status, "pending_decision": None, "failure_reason": None})
    lines = _screen(_invoke(monkeypatch, state, "show", "ignored"))
    assert not any(line.startswith(("waiting", "decide")) for line in lines)
    assert next(line for line in lines if line.startswith("status")).split()[1] == status
