"""OpenTelemetry: one trace from the finding's hand-over to every step of its incident."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from irflow.devstack.demo import sample_finding
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Status
from irflow.telemetry import exporter_names
from irflow.temporal_client import connect
from tests.support import running_worker, wait_for
from workflows.incident import IncidentWorkflow


class _Collected(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.recording = True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.recording:
            self.spans += spans
        return SpanExportResult.SUCCESS


@pytest.fixture(scope="module")
def collected():
    """The process's tracer provider (set once per process, as setup_tracing does in irflow's processes)."""
    exporter = _Collected()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.recording = False


async def test_one_trace_runs_from_the_finding_to_each_containment_step(dev_env, workload, collected):
    client = await connect(address=dev_env.client.service_client.config.target_host)
    async with running_worker(client) as settings:
        event = sample_finding(workload.instance_id, workload.account_id, workload.region)
        submission = await submit(client, parse_guardduty(event), settings)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
    [handed_over] = [s for s in collected.spans if s.name == "irflow.submit_finding"]
    assert handed_over.attributes["irflow.incident_id"] == submission.incident_id
    assert handed_over.attributes["irflow.finding.type"] == "Backdoor:EC2/C&CActivity.B!DNS"
    assert handed_over.attributes["irflow.joined"] is False
    in_trace = {s.name for s in collected.spans if s.context.trace_id == handed_over.context.trace_id}
    assert "RunWorkflow:IncidentWorkflow" in in_trace
    steps = {name.split(":", 1)[1] for name in in_trace if name.startswith("RunActivity:")}
    assert {"isolate_network", "snapshot_volumes", "protect_instance"} <= steps, sorted(in_trace)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
    ],
)
def test_export_is_what_the_standard_variables_ask_for(monkeypatch, environment, expected):
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert exporter_names() == expected
