"""The operator's commands: least-privilege IAM printed from the activities' declarations, and the
namespace's search attributes."""

from __future__ import annotations

import asyncio
import json

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from typer.testing import CliRunner

from irflow.cli import app
from tests.support import REPO
from workflows import search_attributes as sa

RUNNER = CliRunner()


def test_policy_prints_the_committed_worker_policy_and_member_role():
    """`make policy` writes infra/ with these commands: what they print is what is committed."""
    worker = RUNNER.invoke(app, ["policy"])
    assert worker.exit_code == 0, worker.output
    assert json.loads(worker.stdout) == json.loads((REPO / "infra" / "worker-policy.json").read_text())
    template = RUNNER.invoke(app, ["policy", "--member-template"])
    assert json.loads(template.stdout) == json.loads((REPO / "infra" / "member-role.json").read_text())
    member = json.loads(RUNNER.invoke(app, ["policy", "--member"]).stdout)
    actions = {a for statement in member["Statement"] for a in statement["Action"]}
    assert "ec2:ModifyNetworkInterfaceAttribute" in actions and "sns:Publish" not in actions


async def test_setup_namespace_leaves_a_namespace_that_has_the_attributes_as_it_is(dev_env):
    address = dev_env.client.service_client.config.target_host
    result = await asyncio.to_thread(RUNNER.invoke, app, ["setup-namespace"], env={"TEMPORAL_ADDRESS": address})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "search attributes already present"
    listed = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=dev_env.client.namespace)
    )
    assert {key.name for key in sa.ALL} <= set(listed.custom_attributes)


def test_the_codec_server_refuses_to_start_without_a_key(monkeypatch):
    """(What it serves is tested in tests/irflow/test_codec_server.py, on the same make_server.)"""
    monkeypatch.delenv("IRFLOW_PAYLOAD_KMS_KEY_ID", raising=False)
    result = RUNNER.invoke(app, ["codec-server", "--port", "0"])
    assert result.exit_code == 2 and "IRFLOW_PAYLOAD_KMS_KEY_ID" in result.output
