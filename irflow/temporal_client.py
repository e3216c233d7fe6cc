"""Connecting to Temporal the way every Temporal tool does, and preparing the namespace for irflow."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from irflow.codec import with_payload_codec
from irflow.models.settings import get_settings
from workflows import search_attributes as sa

DEFAULT_ADDRESS = "localhost:7233"


def exit_now(code: int) -> NoReturn:
    """Leave a short-lived client process without interpreter teardown.

    The SDK's Rust runtime threads can outlive the event loop and crash CPython's finalisation
    (temporalio/sdk-python#300: "PyGILState_Release ... must be current", SIGSEGV/SIGABRT after all
    work is done). A command that already printed its answer must not then exit with -11.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


class TemporalUnreachable(ConnectionError):
    def __init__(self, address: str, reason: str):
        super().__init__(f"cannot reach Temporal at {address}: {reason}")
        self.address = address
        self.reason = reason


def _short_reason(error: Exception) -> str:
    text = " ".join(str(error).split())
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("dns error", "host name not found"),
        ("timed out", "timed out"),
        ("certificate", "TLS certificate problem"),
    ):
        if needle.lower() in text.lower():
            return reason
    return text[:160]


async def connect(address: str | None = None, namespace: str | None = None, lazy: bool = False) -> Client:
    """Connect using TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* (or a
    Temporal config profile), with the pydantic converter (its payloads sealed under IRFLOW_PAYLOAD_KMS_KEY_ID
    when set) and OpenTelemetry tracing.

    Raises `TemporalUnreachable` with a one-line reason when the server cannot be reached. A `lazy`
    client connects on first use, so a listener can start while Temporal is down."""
    config = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    converter = with_payload_codec(pydantic_data_converter, get_settings().payload_kms_key_id)
    try:
        return await Client.connect(**config, data_converter=converter, interceptors=[TracingInterceptor()], lazy=lazy)
    except RuntimeError as error:
        raise TemporalUnreachable(config["target_host"], _short_reason(error)) from None


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register irflow's custom search attributes in the client's namespace; returns those added."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server cannot list
            raise
        existing = set()
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in sa.ALL if key.name not in existing
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
            )
        except RPCError as error:
            if error.status != RPCStatusCode.ALREADY_EXISTS:
                raise
            return []
    return sorted(missing)
