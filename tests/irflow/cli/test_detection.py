"""`irflow rules list|test` and `irflow detect --replay`, through the real CLI (typer's runner)."""

from __future__ import annotations

import gzip
import json
import textwrap

from typer.testing import CliRunner

from irflow.cli import app
from tests.support import CORPORA, REPO

SIGMA = str(CORPORA / "sigma" / "rules")
EXAMPLES = REPO / "examples" / "rules"  # a team's own rule files

GOOD = """
from irflow.detection.authoring import EC2_SERVICE, Severity, cloudtrail_event, fires_on, rule, stays_quiet_on

@rule(id="team.ec2.key-pair-imported", title="Key pair imported", severity=Severity.MEDIUM,
      finding_type="Persistence:IAMUser/KeyPairImported", sources={EC2_SERVICE}, names={"ImportKeyPair"},
      tests=[fires_on("imports", cloudtrail_event("ImportKeyPair", EC2_SERVICE)),
             stays_quiet_on("creates", cloudtrail_event("CreateKeyPair", EC2_SERVICE))])
def imported(event):
    return not event.get("errorCode")
"""
RUNNER = CliRunner()


def test_rules_list_names_every_rule_and_every_sigma_file_it_could_not_load():
    result = RUNNER.invoke(app, ["rules", "list", "--sigma", SIGMA, "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    kinds = {rule["kind"] for rule in listed["rules"]}
    assert {"sigma", "python", "windowed"} <= kinds
    assert sum(rule["kind"] == "sigma" for rule in listed["rules"]) + len(listed["unsupported"]) == 57
    assert all(item["reason"] for item in listed["unsupported"])


def test_rules_test_runs_every_python_rules_own_events():
    result = RUNNER.invoke(app, ["rules", "test", "--json"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["failures"] == [] and outcome["tests"] >= 100
    assert outcome["rules"] == 74 and outcome["unloadable"] == []  # irflow's own, loaded from their files


def test_detect_replay_prints_alerts_from_a_gzipped_cloudtrail_log_file(tmp_path):
    records = []
    for line in (CORPORA / "cloudtrail" / "invictus_stream.jsonl").read_text().splitlines()[:400]:
        records.append(json.loads(line)["event"])
    log = tmp_path / "123456789012_CloudTrail_us-east-1_20230710T1145Z.json.gz"
    log.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    result = RUNNER.invoke(app, ["detect", "--replay", str(log), "--json"])
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert alerts and all(a["rule_id"] and a["finding_type"] and a["event_ids"] for a in alerts)
    assert "irflow.ec2.get-password-data" in {a["rule_id"] for a in alerts}


def test_detect_replay_of_a_missing_file_is_one_clear_error(tmp_path):
    result = RUNNER.invoke(app, ["detect", "--replay", str(tmp_path / "nope.json")])
    assert result.exit_code == 1 and "cannot read" in result.output


def test_rules_switched_off_by_configuration_are_listed_as_disabled():
    env = {"IRFLOW_DETECTION_DISABLED_RULES": "irflow.cloudtrail.*"}
    result = RUNNER.invoke(app, ["rules", "list", "--sigma", SIGMA, "--json"], env=env)
    assert result.exit_code == 0, result.output
    listed = {rule["id"]: rule for rule in json.loads(result.stdout)["rules"]}
    assert listed["irflow.cloudtrail.trail-stopped"]["enabled"] is False
    assert listed["irflow.signin.root-activity"]["enabled"] is True
    assert listed["irflow.signin.root-activity"]["identity_types"] == ["Root"]


def test_detect_replay_reads_json_lines_on_stdin_and_marks_leads_below_the_floor():
    role_session = {
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "eventID": "lead-1",
        "eventTime": "2026-11-28T05:00:00Z",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::123456789012:assumed-role/deploy/ci",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "deploy"}},
        },
    }
    stop = {
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "eventID": "stop-1",
        "eventTime": "2026-11-28T05:00:01Z",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/ci", "userName": "ci"},
        "requestParameters": {"name": "main"},
    }
    stdin = "\n".join(json.dumps(e) for e in (role_session, stop)) + "\n"
    result = RUNNER.invoke(app, ["detect", "--replay", "-", "--sigma", SIGMA, "--json"], input=stdin)
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    leads = [a for a in alerts if not a["opens_incident"]]
    assert leads and all(a["severity"] == "LOW" and a["event_ids"] == ["lead-1"] for a in leads)
    assert any(a["rule_id"] == "irflow.cloudtrail.trail-stopped" and a["opens_incident"] for a in alerts)
    text = RUNNER.invoke(app, ["detect", "--replay", "-", "--sigma", SIGMA], input=stdin)
    assert "[lead: below MEDIUM, no incident]" in text.stdout


def test_rules_test_fails_on_a_wrong_verdict_a_missing_negative_test_and_an_unloadable_file(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    wrong = GOOD.replace("team.ec2.key-pair-imported", "team.ec2.wrong").replace(
        'stays_quiet_on("creates", cloudtrail_event("CreateKeyPair", EC2_SERVICE))',
        'fires_on("denied import", cloudtrail_event("ImportKeyPair", EC2_SERVICE, error="AccessDenied"))',
    )
    (tmp_path / "wrong.py").write_text(wrong)
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    result = RUNNER.invoke(app, ["rules", "test", "--rules", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    outcome = json.loads(result.stdout)
    failures = "\n".join(outcome["failures"])
    assert "team.ec2.wrong: denied import: expected True, got False" in failures
    assert "team.ec2.wrong: (tests)" in failures  # no event it must stay quiet on
    assert "team.ec2.key-pair-imported" not in failures
    assert len(outcome["unloadable"]) == 1 and "syntax.py" in outcome["unloadable"][0]

    fine = RUNNER.invoke(app, ["rules", "test", "--rules", str(EXAMPLES)])
    assert fine.exit_code == 0, fine.output


def test_the_listener_setting_brings_a_teams_rules_into_rules_list(tmp_path):
    (tmp_path / "good.py").write_text(textwrap.dedent(GOOD))
    result = RUNNER.invoke(app, ["rules", "list", "--json"], env={"IRFLOW_PYTHON_RULES_DIRS": f"{tmp_path},{EXAMPLES}"})
    assert result.exit_code == 0, result.output
    ids = {rule["id"] for rule in json.loads(result.stdout)["rules"]}
    assert {"team.ec2.key-pair-imported", "acme.sts.break-glass-assumed"} <= ids


def test_detect_replay_of_a_truncated_gzip_file_is_one_clear_error(tmp_path):
    truncated = tmp_path / "cloudtrail.json.gz"
    truncated.write_bytes(gzip.compress(json.dumps({"Records": [{"eventName": "CreateUser"}]}).encode())[:-12])
    result = RUNNER.invoke(app, ["detect", "--replay", str(truncated)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: cannot read {truncated}: ") and result.stderr.count("\n") == 1


def test_detect_replay_names_the_line_that_is_not_json(tmp_path):
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"eventName": "CreateUser"}\n{"eventName": "DeleteUser"}\n{ bad\n')
    result = RUNNER.invoke(app, ["detect", "--replay", str(lines)])
    assert result.exit_code == 1 and "line 3:" in result.stderr, result.stderr
