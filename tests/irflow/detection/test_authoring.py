"""What a rule file imports: the helpers read CloudTrail's real shapes safely, the test events look like
CloudTrail's, and docs/rules.md shows a rule file and an events file that work as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from irflow.detection import authoring
from irflow.detection.authoring import (
    EC2_SERVICE,
    IAM_SERVICE,
    allows_everyone,
    as_list,
    caller_name,
    caller_type,
    cloudtrail_event,
    event_account,
    event_field,
    made_by_aws_service,
    made_by_infrastructure_as_code,
    policy_statements,
    request_parameter,
    response_element,
    statement_principals,
    succeeded,
    trusts_outside_account,
)
from irflow.detection.rule_files import load_rule_files
from irflow.detection.rule_tests import run_rule_tests
from tests.support import REPO

DOCS = (REPO / "docs" / "rules.md").read_text()
RUFF = Path(sys.executable).parent / "ruff"  # installed with the dev extra, as make test does


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS, re.S)


def test_request_and_response_fields_are_safe_when_the_block_is_null():
    event = cloudtrail_event("CreateUser", IAM_SERVICE)  # requestParameters and responseElements: null
    assert event["requestParameters"] is None and event["responseElements"] is None
    assert request_parameter(event, "userName") is None and request_parameter(event, "userName", "") == ""
    assert response_element(event, "user") is None
    created = cloudtrail_event("CreateUser", IAM_SERVICE, request={"userName": "bob"}, response={"user": {"a": 1}})
    assert request_parameter(created, "userName") == "bob" and response_element(created, "user") == {"a": 1}
    assert event_field(created, "userIdentity.userName") == "alice"
    assert event_field(created, "userIdentity.sessionContext.sessionIssuer.userName") is None


def test_succeeded_is_the_absence_of_an_error_code():
    assert succeeded(cloudtrail_event("RunInstances", EC2_SERVICE))
    assert not succeeded(cloudtrail_event("RunInstances", EC2_SERVICE, error="Client.UnauthorizedOperation"))


def test_who_made_the_call():
    alice = cloudtrail_event("CreateUser", IAM_SERVICE)
    assert caller_type(alice) == "IAMUser" and caller_name(alice) == "alice" and event_account(alice) == "111111111111"
    session = {"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::2:assumed-role/deploy/ci-run"}}
    assert caller_type(session) == "AssumedRole" and caller_name(session) == "ci-run" and event_account(session) is None
    assert caller_type({"userIdentity": None}) is None and caller_name({}) is None

    assert not made_by_aws_service(alice)
    assert made_by_aws_service(cloudtrail_event("CreateUser", IAM_SERVICE, identity_type="AWSService"))
    assert made_by_aws_service(
        {**alice, "userIdentity": {"type": "IAMUser", "invokedBy": "cloudformation.amazonaws.com"}}
    )
    assert made_by_aws_service({**alice, "eventType": "AwsServiceEvent"})

    assert not made_by_infrastructure_as_code(alice)
    for agent in ("APN/1.0 HashiCorp/1.0 Terraform/1.1.2", "cloudformation.amazonaws.com", "Pulumi/3", "aws-cdk/2"):
        assert made_by_infrastructure_as_code({**alice, "userAgent": agent}), agent
    assert not made_by_infrastructure_as_code({**alice, "userAgent": None})


def test_as_list_takes_cloudtrails_one_or_many():
    assert as_list(None) == [] and as_list({"a": 1}) == [{"a": 1}] and as_list([1, 2]) == [1, 2]


def test_policy_statements_read_json_text_objects_and_a_single_statement():
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}
    assert policy_statements('{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]}') == [
        statement
    ]
    assert policy_statements({"Statement": statement}) == [statement]
    assert policy_statements("not json") == [] and policy_statements(None) == [] and policy_statements([]) == []


def test_principals_everyone_and_outside_accounts():
    statement = {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::999999999999:root", "111111111111"]}}
    assert statement_principals(statement) == ["arn:aws:iam::999999999999:root", "111111111111"]
    assert statement_principals({"Principal": {"Service": "ec2.amazonaws.com"}}) == ["ec2.amazonaws.com"]
    assert allows_everyone({"Effect": "Allow", "Principal": {"AWS": "*"}})
    assert not allows_everyone({"Effect": "Allow", "Principal": "*", "Condition": {"StringEquals": {"x": "y"}}})
    assert not allows_everyone({"Effect": "Deny", "Principal": "*"})

    assert trusts_outside_account({"Statement": [statement]}, "111111111111")
    own = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/x"}}]}
    assert not trusts_outside_account(own, "111111111111")
    assert trusts_outside_account({"Statement": [{"Effect": "Allow", "Principal": "*"}]}, "111111111111")
    assert not trusts_outside_account({"Statement": [{**statement, "Effect": "Deny"}]}, "111111111111")


def test_a_test_event_is_a_whole_cloudtrail_record():
    root = cloudtrail_event(
        "ConsoleLogin", "signin.amazonaws.com", identity_type="Root", eventTime="2024-06-01T03:12:00Z", error="Failed"
    )
    assert root["userIdentity"]["type"] == "Root" and root["userIdentity"]["arn"] == "arn:aws:iam::111111111111:root"
    assert root["eventTime"] == "2024-06-01T03:12:00Z" and root["errorCode"] == "Failed"
    bob = cloudtrail_event("ListUsers", IAM_SERVICE, user_name="bob")
    assert bob["userIdentity"]["arn"] == "arn:aws:iam::111111111111:user/bob" and "errorCode" not in bob
    assert {"eventVersion", "eventTime", "awsRegion", "sourceIPAddress", "userAgent", "recipientAccountId"} <= set(bob)


def test_every_name_a_rule_file_can_import_is_in_docs_rules_md():
    missing = [name for name in authoring.__all__ if f"`{name}" not in DOCS]
    assert missing == []
    assert all(hasattr(authoring, name) for name in authoring.__all__)


def test_the_python_in_docs_rules_md_is_ruff_clean(tmp_path):
    blocks = _blocks("python")
    assert blocks
    for number, block in enumerate(blocks):
        (tmp_path / f"block_{number}.py").write_text(block)
    config = str(REPO / "pyproject.toml")
    checked = subprocess.run([str(RUFF), "check", "--config", config, str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    formatted = subprocess.run(
        [str(RUFF), "format", "--check", "--config", config, str(tmp_path)], capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout


def test_the_rule_file_in_docs_rules_md_loads_and_passes_its_tests(tmp_path):
    [rule_file] = [b for b in _blocks("python") if "@rule(" in b]
    (tmp_path / "doc_rules.py").write_text(rule_file)
    rules, rejected = load_rule_files([tmp_path])
    assert rejected == [] and [r.rule_id for r in rules] == ["acme.sts.break-glass-assumed"]
    assert run_rule_tests(rules) == [] and len(rules[0].tests) == 2


def test_the_events_file_in_docs_rules_md_tests_the_example_rule(tmp_path):
    [events_file] = _blocks("json")
    shutil.copy(REPO / "examples" / "rules" / "acme_rules.py", tmp_path / "acme_rules.py")
    (tmp_path / "acme_rules.events.json").write_text(events_file)
    rules, rejected = load_rule_files([tmp_path])
    assert rejected == []
    [night] = [r for r in rules if r.rule_id == "acme.signin.console-login-at-night"]
    assert [(t.name, t.expected) for t in night.tests] == [("Saturday 03:12", True)]
    assert night.matches(night.tests[0].event)


def test_a_call_rule_fires_on_every_successful_call_and_can_leave_out_aws_services(tmp_path):
    (tmp_path / "calls.py").write_text(
        "from irflow.detection.authoring import KMS_SERVICE, Severity, call_rule\n\n"
        'call_rule(id="t.kms.any", title="any", severity=Severity.HIGH, finding_type="Impact:KMS/X",\n'
        '          sources={KMS_SERVICE}, names={"DisableKey"})\n'
        'call_rule(id="t.kms.people", title="people", severity=Severity.HIGH, finding_type="Impact:KMS/X",\n'
        '          sources={KMS_SERVICE}, names={"DisableKey"}, by_aws_services=False)\n'
    )
    rules, rejected = load_rule_files([tmp_path])
    assert rejected == []
    by_id = {r.rule_id: r for r in rules}
    by_alice = cloudtrail_event("DisableKey", "kms.amazonaws.com")
    by_aws = cloudtrail_event("DisableKey", "kms.amazonaws.com", eventType="AwsServiceEvent")
    denied = cloudtrail_event("DisableKey", "kms.amazonaws.com", error="AccessDenied")
    other = cloudtrail_event("EnableKey", "kms.amazonaws.com")
    assert [by_id["t.kms.any"].matches(e) for e in (by_alice, by_aws, denied, other)] == [True, True, False, False]
    assert [by_id["t.kms.people"].matches(e) for e in (by_alice, by_aws, denied, other)] == [True, False, False, False]
    assert by_id["t.kms.people"].description == "people", "the title, when no description is given"
