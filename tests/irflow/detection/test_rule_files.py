"""A team's own Python rules: folders of rule files loaded beside irflow's, tested by `irflow rules test`, and
reported (never crashing the loader) when a file is broken."""

from __future__ import annotations

import json
import textwrap

from typer.testing import CliRunner

from irflow.cli import app
from irflow.detection.detector import Detector
from irflow.detection.python_rules import load_rule_files, python_rules, run_rule_tests
from irflow.models.finding import Severity
from tests.support import REPO

EXAMPLES = REPO / "examples" / "rules"
RUNNER = CliRunner()

GOOD = """
from irflow.detection.python_rules import T, ev, rule
from irflow.models.finding import Severity

@rule(id="team.ec2.key-pair-imported", title="Key pair imported", severity=Severity.MEDIUM,
      finding_type="Persistence:IAMUser/KeyPairImported", sources={"ec2.amazonaws.com"}, names={"ImportKeyPair"},
      tests=[T("imports", ev("ImportKeyPair", "ec2.amazonaws.com"), True),
             T("creates", ev("CreateKeyPair", "ec2.amazonaws.com"), False)])
def imported(event):
    return not event.get("errorCode")
"""


def test_the_example_rules_load_and_pass_their_own_tests():
    rules, rejected = load_rule_files([EXAMPLES])
    assert rejected == []
    assert {r.rule_id for r in rules} == {"acme.sts.break-glass-assumed", "acme.signin.console-login-at-night"}
    assert run_rule_tests(rules) == []
    assert not {r.rule_id for r in python_rules()} & {r.rule_id for r in rules}  # irflow's own set is untouched


def test_a_teams_rule_raises_a_finding_through_the_detector():
    detector = Detector(python_dirs=[EXAMPLES])
    event = {
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "eventID": "bg-1",
        "eventTime": "2026-11-28T03:00:00Z",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "123456789012",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::123456789012:user/mallory",
            "userName": "mallory",
            "accessKeyId": "AKIAEXAMPLEMALLORY01",
        },
        "requestParameters": {"roleArn": "arn:aws:iam::123456789012:role/break-glass-admin"},
    }
    [found] = detector(event)
    assert found.raw["rule_id"] == "acme.sts.break-glass-assumed" and found.finding.severity == Severity.HIGH
    assert found.finding.resource.access_key_id == "AKIAEXAMPLEMALLORY01"


def test_broken_rule_files_are_reported_with_the_reason_and_the_rest_still_load(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    (tmp_path / "empty.py").write_text("X = 1\n")
    (tmp_path / "clash.py").write_text(GOOD.replace("team.ec2.key-pair-imported", "irflow.cloudtrail.trail-stopped"))
    rules, rejected = load_rule_files([tmp_path])
    assert [r.rule_id for r in rules] == ["team.ec2.key-pair-imported"]
    reasons = {p.rsplit("/", 1)[-1]: reason for p, reason in ((u.source, u.reason) for u in rejected)}
    assert "SyntaxError" in reasons["syntax.py"]
    assert "declares no rule" in reasons["empty.py"]
    assert "already defined" in reasons["clash.py"] and "irflow.cloudtrail.trail-stopped" in reasons["clash.py"]


def test_rules_test_fails_on_a_wrong_verdict_a_missing_negative_test_and_an_unloadable_file(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    wrong = GOOD.replace("team.ec2.key-pair-imported", "team.ec2.wrong").replace(
        'T("creates", ev("CreateKeyPair", "ec2.amazonaws.com"), False)',
        'T("denied import", ev("ImportKeyPair", "ec2.amazonaws.com", error="AccessDenied"), True)',
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


def test_a_rule_that_raises_costs_only_itself(tmp_path, caplog):
    crashing = GOOD.replace("team.ec2.key-pair-imported", "team.ec2.crashes").replace(
        'return not event.get("errorCode")', 'return event["requestParameters"]["keyName"].startswith("x")'
    )
    (tmp_path / "crash.py").write_text(crashing)
    detector = Detector(python_dirs=[tmp_path])
    imported = {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "ImportKeyPair",
        "eventTime": "2026-11-28T03:00:00Z",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/ci", "userName": "ci"},
        "requestParameters": None,
    }
    stop = {**imported, "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}
    assert detector(imported) == []  # the rule raised TypeError: no alert, no exception
    assert [f.raw["rule_id"] for f in detector(stop)] == ["irflow.cloudtrail.trail-stopped"]
    assert detector.engine.errors == {"team.ec2.crashes": 1}
    assert "team.ec2.crashes raised TypeError" in caplog.text
