"""Connecting to Temporal (a one-line `TemporalUnreachable` when nobody answers) and preparing a namespace's
search attributes. `exit_now` ends the process: the end-to-end tests run it (tests/e2e/test_processes.py)."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSystemInfoRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from irflow.temporal_client import TemporalUnreachable, connect, ensure_search_attributes
from tests.support import free_port
from workflows import search_attributes as sa

IRFLOW_ATTRIBUTES = sorted(key.name for key in sa.ALL)
# Every attribute is a keyword but what a contained incident guards, a keyword list.
EXPECTED_TYPES = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in sa.ALL} | {
    sa.GUARDED.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
}


@pytest.fixture
def no_temporal_environment(monkeypatch):
    """No TEMPORAL_* from the machine running the tests: only what each test sets."""
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)


async def test_an_address_nobody_listens_on_is_one_line_naming_it(no_temporal_environment) -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(TemporalUnreachable) as raised:
        await connect(address=address)
    message = str(raised.value)
    assert message == f"cannot reach Temporal at {address}: connection refused"
    assert raised.value.address == address and raised.value.reason == "connection refused"
    assert isinstance(raised.value, ConnectionError)


async def test_the_address_comes_from_temporal_address(no_temporal_environment, monkeypatch) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    with pytest.raises(TemporalUnreachable, match=f"^cannot reach Temporal at {address}: "):
        await connect()


async def test_a_lazy_client_is_made_while_nobody_listens(no_temporal_environment) -> None:
    """The listener starts (and holds its messages) while Temporal is down."""
    client = await connect(address=f"127.0.0.1:{free_port()}", lazy=True)
    assert isinstance(client, Client)


async def test_connect_reaches_a_running_server(dev_env, no_temporal_environment) -> None:
    client = await connect(address=dev_env.client.service_client.config.target_host)
    assert client.namespace == "default"
    assert (await client.workflow_service.get_system_info(GetSystemInfoRequest())).server_version


async def _listed(client: Client) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(response.custom_attributes)


async def test_a_prepared_namespace_needs_nothing_added_and_lists_every_attribute(dev_env) -> None:
    assert await ensure_search_attributes(dev_env.client) == []
    listed = await _listed(dev_env.client)
    assert {name: listed.get(name) for name in IRFLOW_ATTRIBUTES} == EXPECTED_TYPES


async def test_a_new_namespace_gets_every_attribute_once(dev_env, no_temporal_environment) -> None:
    namespace = f"irflow-test-{uuid.uuid4().hex[:10]}"
    await dev_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    await dev_env.client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    client = await connect(address=dev_env.client.service_client.config.target_host, namespace=namespace)
    assert client.namespace == namespace
    assert await ensure_search_attributes(client) == IRFLOW_ATTRIBUTES
    assert await ensure_search_attributes(client) == []
    listed = await _listed(client)
    assert {name: listed.get(name) for name in IRFLOW_ATTRIBUTES} == EXPECTED_TYPES


async def test_a_namespace_that_does_not_exist_is_an_error_not_an_empty_answer(dev_env, no_temporal_environment):
    client = await connect(address=dev_env.client.service_client.config.target_host, namespace="no-such-namespace")
    with pytest.raises(RPCError) as raised:
        await ensure_search_attributes(client)
    assert raised.value.status == RPCStatusCode.NOT_FOUND and "no-such-namespace" in raised.value.message
