"""What every long-running irflow process does first (`prepare_process`): its settings, or one `error:` line."""

from __future__ import annotations

import pytest

from irflow.models.settings import IrflowSettings, get_settings
from irflow.startup import prepare_process

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    """Settings read anew from this test's environment; no tracing asked for unless a test asks."""
    for name in (*OTEL_VARIABLES, "IRFLOW_SETTINGS_FILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def the_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: "), captured.err
    return captured.err.removeprefix("error: ").rstrip("\n")


def test_a_valid_environment_gives_its_settings_and_no_tracer_when_none_is_asked_for(monkeypatch, capsys) -> None:
    monkeypatch.setenv("IRFLOW_TASK_QUEUE", "irflow-startup-test")
    monkeypatch.setenv("IRFLOW_DECISION_TIMEOUT_SECONDS", "600")
    prepared = prepare_process("irflow-test")
    assert prepared is not None
    settings, provider = prepared
    assert isinstance(settings, IrflowSettings)
    assert settings.task_queue == "irflow-startup-test" and settings.decision_timeout_seconds == 600
    assert settings is get_settings()  # the process's settings, as every later get_settings() returns them
    assert provider is None
    assert capsys.readouterr().err == ""


def test_settings_from_the_file_irflow_settings_file_names(tmp_path, monkeypatch) -> None:
    path = tmp_path / "irflow.env"
    path.write_text("IRFLOW_TASK_QUEUE=from-the-file\n")
    monkeypatch.setenv("IRFLOW_SETTINGS_FILE", str(path))
    monkeypatch.delenv("IRFLOW_TASK_QUEUE", raising=False)
    prepared = prepare_process("irflow-test")
    assert prepared is not None and prepared[0].task_queue == "from-the-file"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("IRFLOW_DECISION_TIMEOUT_SECONDS", "abc", "IRFLOW_DECISION_TIMEOUT_SECONDS: Input should be a valid integer"),
        ("IRFLOW_DECISION_TIMEOUT_SECONDS", "0", "IRFLOW_DECISION_TIMEOUT_SECONDS: Input should be greater than or"),
        ("IRFLOW_EVIDENCE_LOCK_MODE", "LOOSE", "IRFLOW_EVIDENCE_LOCK_MODE: Input should be 'COMPLIANCE' or"),
        ("IRFLOW_MIN_SEVERITY", "URGENT", "IRFLOW_MIN_SEVERITY: Input should be"),
        ("IRFLOW_MEMBER_SESSION_SECONDS", "60", "IRFLOW_MEMBER_SESSION_SECONDS: Input should be greater than or"),
    ],
)
def test_an_invalid_setting_is_one_error_line_naming_it(monkeypatch, capsys, variable, value, says) -> None:
    monkeypatch.setenv(variable, value)
    assert prepare_process("irflow-test") is None
    line = the_error_line(capsys)
    assert line.startswith(f"invalid settings: {says}"), line


def test_several_invalid_settings_are_named_on_the_same_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("IRFLOW_DECISION_TIMEOUT_SECONDS", "abc")
    monkeypatch.setenv("IRFLOW_ACTIVITY_THREADS", "0")
    assert prepare_process("irflow-test") is None
    line = the_error_line(capsys)
    assert "IRFLOW_DECISION_TIMEOUT_SECONDS:" in line and "IRFLOW_ACTIVITY_THREADS:" in line


def test_a_missing_settings_file_is_one_error_line_naming_it(tmp_path, monkeypatch, capsys) -> None:
    missing = tmp_path / "nope.env"
    monkeypatch.setenv("IRFLOW_SETTINGS_FILE", str(missing))
    assert prepare_process("irflow-test") is None
    assert the_error_line(capsys) == f"IRFLOW_SETTINGS_FILE={missing}: no such file"


def test_a_bad_value_in_the_settings_file_is_one_error_line(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "irflow.env"
    path.write_text("IRFLOW_DECISION_TIMEOUT_SECONDS=soon\n")
    monkeypatch.setenv("IRFLOW_SETTINGS_FILE", str(path))
    monkeypatch.delenv("IRFLOW_DECISION_TIMEOUT_SECONDS", raising=False)
    assert prepare_process("irflow-test") is None
    assert the_error_line(capsys).startswith("invalid settings: IRFLOW_DECISION_TIMEOUT_SECONDS: ")


@pytest.mark.parametrize(
    ("environment", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: irflow exports OTLP over",
        ),
    ],
)
def test_a_tracing_setting_irflow_cannot_honour_is_one_error_line(monkeypatch, capsys, environment, says) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert prepare_process("irflow-test") is None
    assert the_error_line(capsys).startswith(says)
