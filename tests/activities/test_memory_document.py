"""The irflow-CaptureMemory SSM document: its parameters' allowedPatterns admit every bucket and prefix irflow sends and
nothing a shell would read as syntax, and infra/ssm-capture-memory.json is generated from it and passes cfn-lint."""

from __future__ import annotations

import json
import re
import subprocess

import boto3
import pytest

from activities.memory_document import (
    CAPTURE_MEMORY_DOCUMENT,
    capture_memory_document,
    cloudformation_template,
    ensure_capture_memory_document,
)
from tests.infra.test_findings_intake import CFN_LINT
from tests.support import REPO

TEMPLATE = REPO / "infra" / "ssm-capture-memory.json"
SHELL_SYNTAX = [";", "$(", "`", "'", '"', " ", "|", "&", "\n", ">", "<", "\\", "*"]


def _allowed(parameter: str) -> re.Pattern[str]:
    return re.compile(capture_memory_document()["parameters"][parameter]["allowedPattern"])


def test_the_patterns_admit_what_irflow_sends():
    assert _allowed("bucket").match("irflow-evidence-123456789012")
    assert _allowed("bucket").match("Legacy_Bucket.Name")
    assert _allowed("prefix").match(
        "incidents/ec2-123456789012-us-east-1-i-0123456789abcdef0-20260301T090030Z/memory/"
        "AROAEXAMPLEROLEID0001:i-0123456789abcdef0/"
    )
    assert not _allowed("prefix").match("incidents/inc-1/"), "only a memory folder named after a role session"


@pytest.mark.parametrize("syntax", SHELL_SYNTAX)
def test_the_patterns_refuse_shell_syntax(syntax):
    assert not _allowed("bucket").match(f"evidence{syntax}x")
    folder = "memory/AROAEXAMPLEROLEID0001:i-0123456789abcdef0/"
    assert not _allowed("prefix").match(f"incidents/inc-1{syntax}x/{folder}")
    assert not _allowed("prefix").match(f"incidents/inc{syntax}/{folder}")
    assert not _allowed("prefix").match(f"incidents/inc-1/memory/AROAEXAMPLEROLEID0001{syntax}:i-0123456789abcdef0/")


def test_the_prefix_stays_inside_incidents():
    prefix = _allowed("prefix")
    folder = "memory/AROAEXAMPLEROLEID0001:i-0123456789abcdef0/"
    assert not prefix.match(f"incidents/../{folder}") and not prefix.match(f"other/inc-1/{folder}")
    assert not prefix.match(f"incidents/inc-1/../../{folder}") and not prefix.match(f"incidents/inc-1/{folder}x")


def test_committed_template_is_generated_from_the_code_and_names_the_document():
    committed = json.loads(TEMPLATE.read_text())
    assert committed == cloudformation_template()
    properties = committed["Resources"]["CaptureMemoryDocument"]["Properties"]
    assert properties["Name"] == CAPTURE_MEMORY_DOCUMENT and properties["DocumentType"] == "Command"
    assert properties["Content"]["schemaVersion"] == "2.2"
    assert properties["Content"]["mainSteps"][0]["action"] == "aws:runShellScript"


def test_cfn_lint_passes():
    result = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_the_document_is_created_once_with_its_parameters(aws):
    ssm = boto3.client("ssm", region_name="us-east-1")
    assert ensure_capture_memory_document(ssm) is True
    assert ensure_capture_memory_document(ssm) is False, "created once"
    content = json.loads(ssm.get_document(Name=CAPTURE_MEMORY_DOCUMENT)["Content"])
    assert set(content["parameters"]) == {"bucket", "prefix"}
