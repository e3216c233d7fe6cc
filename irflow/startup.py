"""What every long-running irflow process does first: read its settings and set up its tracing."""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace import TracerProvider

from irflow.models.settings import IrflowSettings, SettingsFileError, get_settings, settings_error_line
from irflow.telemetry import TelemetryConfigurationError, setup_tracing


def prepare_process(service_name: str) -> tuple[IrflowSettings, TracerProvider | None] | None:
    """The settings and the tracer provider; None after printing a one-line error when either is refused."""
    try:
        settings = get_settings()
        provider = setup_tracing(service_name)
    except (SettingsFileError, TelemetryConfigurationError, ValueError) as error:  # ValidationError: ValueError
        print(f"error: {settings_error_line(error)}", file=sys.stderr)
        return None
    return settings, provider
