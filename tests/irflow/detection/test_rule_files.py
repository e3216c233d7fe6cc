"""Python rule files: folders of them loaded beside irflow's own, their test events inline or in the
`.events.json` beside them, and files that are broken reported with the reason (never crashing the loader)."""

from __future__ import annotations

import importlib.util
import json

from irflow.detection.catalogue import BUILTIN_RULES, builtin_rules
from irflow.detection.rule_files import load_rule_files
from irflow.detection.rule_tests import run_rule_tests
from tests.support import REPO

EXAMPLES = REPO / "examples" / "rules"

GOOD = """
from irflow.detection.authoring import EC2_SERVICE, Severity, cloudtrail_event, fires_on, rule, stays_quiet_on

@rule(id="team.ec2.key-pair-imported", title="Key pair imported", severity=Severity.MEDIUM,
      finding_type="Persistence:IAMUser/KeyPairImported", sources={EC2_SERVICE}, names={"ImportKeyPair"},
      tests=[fires_on("imports", cloudtrail_event("ImportKeyPair", EC2_SERVICE)),
             stays_quiet_on("creates", cloudtrail_event("CreateKeyPair", EC2_SERVICE))])
def imported(event):
    return not event.get("errorCode")
"""

# The same rule with no inline tests: its events come from the file beside it.
BARE = """
from irflow.detection.authoring import EC2_SERVICE, Severity, rule

@rule(id="team.ec2.key-pair-imported", title="Key pair imported", severity=Severity.MEDIUM,
      finding_type="Persistence:IAMUser/KeyPairImported", sources={EC2_SERVICE}, names={"ImportKeyPair"})
def imported(event):
    return not event.get("errorCode")
"""


def _events_file(rules: dict, base_event: dict | None = None) -> str:
    document = {"rules": rules} if base_event is None else {"base_event": base_event, "rules": rules}
    return json.dumps(document)


def _case(name: str, fires: bool, **event) -> dict:
    return {"name": name, "fires": fires, "event": {"eventSource": "ec2.amazonaws.com", **event}}


def _reasons(rejected) -> dict[str, str]:
    return {u.source.rsplit("/", 1)[-1]: u.reason for u in rejected}


def test_the_example_rules_load_and_pass_their_own_tests():
    rules, rejected = load_rule_files([EXAMPLES])
    assert rejected == []
    assert {r.rule_id for r in rules} == {"acme.sts.break-glass-assumed", "acme.signin.console-login-at-night"}
    assert run_rule_tests(rules) == []
    assert not {r.rule_id for r in builtin_rules()} & {r.rule_id for r in rules}  # irflow's own set is untouched
    tests = {r.rule_id: len(r.tests) for r in rules}
    # one rule carries its tests inline, the other in acme_rules.events.json
    assert tests == {"acme.sts.break-glass-assumed": 3, "acme.signin.console-login-at-night": 4}


def test_broken_rule_files_are_reported_with_the_reason_and_the_rest_still_load(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    (tmp_path / "empty.py").write_text("X = 1\n")
    (tmp_path / "clash.py").write_text(GOOD.replace("team.ec2.key-pair-imported", "irflow.cloudtrail.trail-stopped"))
    rules, rejected = load_rule_files([BUILTIN_RULES, tmp_path])
    assert [r.rule_id for r in rules if not r.rule_id.startswith("irflow.")] == ["team.ec2.key-pair-imported"]
    assert len(rules) == 74 + 1  # irflow's own, untouched by the clash
    reasons = _reasons(rejected)
    assert set(reasons) == {"syntax.py", "empty.py", "clash.py"}
    assert "SyntaxError" in reasons["syntax.py"]
    assert "declares no rule" in reasons["empty.py"]
    assert "already defined" in reasons["clash.py"] and "irflow.cloudtrail.trail-stopped" in reasons["clash.py"]


def test_a_file_declaring_one_id_twice_is_reported_whole(tmp_path):
    (tmp_path / "twice.py").write_text(GOOD + GOOD.replace("def imported", "def imported_again"))
    rules, rejected = load_rule_files([tmp_path])
    assert rules == []
    assert "duplicate rule id team.ec2.key-pair-imported" in _reasons(rejected)["twice.py"]


def test_a_single_rule_file_can_be_loaded_on_its_own(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "other.py").write_text(GOOD.replace("team.ec2.key-pair-imported", "team.ec2.other"))
    rules, rejected = load_rule_files([tmp_path / "good.py"])
    assert [r.rule_id for r in rules] == ["team.ec2.key-pair-imported"] and rejected == []


def test_a_folder_that_does_not_exist_is_reported(tmp_path):
    rules, rejected = load_rule_files([tmp_path / "rules-typo"])
    assert rules == [] and _reasons(rejected) == {"rules-typo": "no such file or folder"}


def test_test_events_beside_a_rule_file_are_attached_to_its_rules(tmp_path):
    (tmp_path / "keys.py").write_text(BARE)
    base = {"eventVersion": "1.08", "awsRegion": "eu-west-1", "requestParameters": {"keyName": "laptop"}}
    (tmp_path / "keys.events.json").write_text(
        _events_file(
            {
                "team.ec2.key-pair-imported": [
                    _case("imports", True, eventName="ImportKeyPair"),
                    _case("denied", False, eventName="ImportKeyPair", errorCode="UnauthorizedOperation"),
                    _case("creates", False, eventName="CreateKeyPair", requestParameters=None),
                ]
            },
            base_event=base,
        )
    )
    [loaded], rejected = load_rule_files([tmp_path])
    assert rejected == []
    assert [(t.name, t.expected) for t in loaded.tests] == [("imports", True), ("denied", False), ("creates", False)]
    imports, denied, creates = (t.event for t in loaded.tests)
    assert imports == {**base, "eventSource": "ec2.amazonaws.com", "eventName": "ImportKeyPair"}
    assert denied["errorCode"] == "UnauthorizedOperation" and denied["awsRegion"] == "eu-west-1"
    assert creates["requestParameters"] is None  # a field the event names replaces the base's whole
    assert run_rule_tests([loaded]) == []


def test_inline_tests_and_tests_beside_the_file_add_up(tmp_path):
    (tmp_path / "keys.py").write_text(GOOD)
    (tmp_path / "keys.events.json").write_text(
        _events_file({"team.ec2.key-pair-imported": [_case("denied", True, eventName="ImportKeyPair", errorCode="X")]})
    )
    [loaded], _ = load_rule_files([tmp_path])
    assert [t.name for t in loaded.tests] == ["imports", "creates", "denied"]
    [failure] = run_rule_tests([loaded])
    assert str(failure) == "team.ec2.key-pair-imported: denied: expected True, got False"


def test_a_broken_events_file_is_reported_and_its_rules_still_load(tmp_path):
    (tmp_path / "keys.py").write_text(GOOD)
    (tmp_path / "keys.events.json").write_text('{"rules": {"team.ec2.key-pair-imported": [')
    [loaded], rejected = load_rule_files([tmp_path])
    assert loaded.rule_id == "team.ec2.key-pair-imported" and len(loaded.tests) == 2  # the inline ones
    assert "JSONDecodeError" in _reasons(rejected)["keys.events.json"]


def test_events_for_a_rule_the_file_does_not_declare_are_reported(tmp_path):
    (tmp_path / "keys.py").write_text(GOOD)
    (tmp_path / "keys.events.json").write_text(
        _events_file({"team.ec2.key-pair-imprted": [_case("imports", True, eventName="ImportKeyPair")]})
    )
    [loaded], rejected = load_rule_files([tmp_path])
    assert len(loaded.tests) == 2
    reason = _reasons(rejected)["keys.events.json"]
    assert "team.ec2.key-pair-imprted" in reason and "keys.py does not declare" in reason


def test_an_events_file_whose_rule_file_is_gone_is_reported(tmp_path):
    (tmp_path / "renamed.py").write_text(GOOD)
    (tmp_path / "keys.events.json").write_text(_events_file({}))
    _, rejected = load_rule_files([tmp_path])
    assert _reasons(rejected) == {"keys.events.json": "no rule file keys.py beside it"}


def test_a_rule_file_imported_directly_carries_its_rules_and_registers_nothing(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    spec = importlib.util.spec_from_file_location("team_rules_imported", tmp_path / "good.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    declared = module.imported.rule
    assert declared.rule_id == "team.ec2.key-pair-imported" and run_rule_tests([declared]) == []
    assert declared.description == "Key pair imported"  # no docstring: the title
    assert "team.ec2.key-pair-imported" not in {r.rule_id for r in builtin_rules()}
