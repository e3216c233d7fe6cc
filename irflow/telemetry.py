"""OpenTelemetry tracing for irflow's processes, configured by the standard OTEL_* variables.

Every Temporal client irflow makes carries Temporal's TracingInterceptor (irflow.temporal_client), so a
finding's span in the listener (or `irflow ingest`) is the parent of the incident's workflow and of each
activity it runs, across processes: one trace from the queue message to the containment. Nothing is
exported unless the environment asks for it:

* `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): OTLP over HTTP/protobuf to a
  collector, Jaeger or any OTLP backend (`OTEL_EXPORTER_OTLP_HEADERS` and the other OTLP settings apply);
* `OTEL_TRACES_EXPORTER`: `otlp`, `console` or `none` (comma-separated for several);
* `OTEL_SERVICE_NAME` overrides the process's own name (`irflow-worker`, `irflow-listener`);
* `OTEL_SDK_DISABLED=true` turns it all off.

Spans leave the process unencrypted: irflow's own attributes carry ids, types and hashes, never an identity
(a user or role name, an access key id: only its hash, see irflow.visibility), an address or a user agent.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

log = logging.getLogger("irflow.telemetry")

tracer = trace.get_tracer("irflow")


class TelemetryConfigurationError(ValueError):
    pass


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            raise TelemetryConfigurationError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: irflow exports OTLP over http/protobuf (port 4318)"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise TelemetryConfigurationError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")


def exporter_names() -> list[str]:
    """What the environment asks for: OTEL_TRACES_EXPORTER, else `otlp` when an OTLP endpoint is set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not named and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        named = ["otlp"]
    return [n for n in named if n != "none"]


def setup_tracing(service_name: str) -> TracerProvider | None:
    """Install the process's tracer provider when the environment asks for export; None otherwise."""
    names = exporter_names()
    if not names:
        return None
    exporters = [_exporter(name) for name in names]
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans as %s via %s", resource.attributes["service.name"], ", ".join(names))
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Export what is still buffered (processes leave with os._exit, which would drop it)."""
    if provider is not None:
        provider.shutdown()
