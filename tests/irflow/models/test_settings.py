"""Settings from the environment, or from a mounted dotenv file named by IRFLOW_SETTINGS_FILE."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from irflow.models.settings import SettingsFileError, get_settings, load_settings
from tests.support import REPO

APPROVERS = {"alice@example.com": {"roles": ["approver"]}}


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "irflow.env"
    path.write_text(f"IRFLOW_TASK_QUEUE=from-file\nIRFLOW_APPROVERS='{json.dumps(APPROVERS)}'\nIRFLOW_QUEUE_URLS=a,b\n")
    monkeypatch.setenv("IRFLOW_SETTINGS_FILE", str(path))
    for name in ("IRFLOW_TASK_QUEUE", "IRFLOW_APPROVERS", "IRFLOW_QUEUE_URLS"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_settings_come_from_the_file(settings_file):
    settings = get_settings()
    assert settings.task_queue == "from-file"
    assert settings.approvers["alice@example.com"].roles == ["approver"]
    assert settings.queue_urls == ["a", "b"]


def test_the_environment_wins_over_the_file(settings_file, monkeypatch):
    monkeypatch.setenv("IRFLOW_TASK_QUEUE", "from-env")
    assert load_settings().task_queue == "from-env"
    assert load_settings().queue_urls == ["a", "b"]


def test_a_named_file_that_is_missing_is_an_error_not_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("IRFLOW_SETTINGS_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(SettingsFileError, match="nope.env: no such file"):
        load_settings()


@pytest.mark.parametrize("entry", [["worker.py"], ["starter.py"], ["-m", "irflow.cli", "rules", "list"]])
@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "IRFLOW_SETTINGS_FILE",
            "/nonexistent/irflow.env",
            "IRFLOW_SETTINGS_FILE=/nonexistent/irflow.env: no such file",
        ),
        ("IRFLOW_MIN_SEVERITY", "URGENT", "invalid settings: IRFLOW_MIN_SEVERITY: Input should be"),
    ],
)
def test_processes_refuse_bad_settings_with_one_line(entry, variable, value, says):
    done = subprocess.run(
        [sys.executable, *entry],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {says}") and done.stderr.count("\n") == 1, done.stderr
