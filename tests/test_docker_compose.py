"""No Docker engine runs here, so the compose file is checked for what would break `docker compose up`:
every service's command must exist in the image, and the settings it passes must be real settings."""

from __future__ import annotations

import re

import yaml

from irflow.models.settings import SETTINGS_FILE_VARIABLE, IrflowSettings
from tests.support import REPO


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_temporal_with_ui_and_scalable_workers():
    services = _compose()["services"]
    assert {"temporal", "worker", "setup", "aws"} <= set(services)
    assert "8233:8233" in services["temporal"]["ports"], "the Temporal UI is published"
    assert services["worker"]["deploy"]["replicas"] >= 2, "workers scale out"
    assert services["worker"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_every_python_command_runs_a_file_or_module_that_exists():
    dockerfile = (REPO / "Dockerfile").read_text()
    for name, service in _compose()["services"].items():
        command = service.get("command", [])
        if not command or command[0] not in ("python", "irflow"):
            continue
        if command[0] == "irflow":
            from irflow.cli import app

            registered = {c.name or c.callback.__name__ for c in app.registered_commands}
            assert command[1] in registered, f"{name}: irflow has no command {command[1]}"
        elif command[1] == "-m":
            module = REPO / (command[2].replace(".", "/") + ".py")
            assert module.exists(), f"{name}: no module {command[2]}"
            assert f"COPY {command[2].split('.')[0]} " in dockerfile, f"{name}: module not copied into the image"
        else:
            assert (REPO / command[1]).exists(), f"{name}: no file {command[1]}"
            assert command[1] in dockerfile, f"{name}: {command[1]} not copied into the image"
        target = service["build"]["target"]
        assert re.search(rf"^FROM .* AS {target}$", dockerfile, re.M), f"{name}: no build target {target}"


def test_irflow_settings_passed_to_containers_exist():
    known = {f"IRFLOW_{field.upper()}" for field in IrflowSettings.model_fields} | {SETTINGS_FILE_VARIABLE}
    for name, service in _compose()["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("IRFLOW_"):
                assert variable in known, f"{name}: {variable} is not an irflow setting"


def test_the_image_holds_every_package_the_project_installs():
    """`pip install .` in the Dockerfile builds from what was copied: a package left out breaks the build."""
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in (pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]):
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), f"{package} is not copied into the image"
    for module in setuptools["py-modules"]:
        assert re.search(rf"^COPY .*\b{module}\.py\b", dockerfile, re.M), f"{module}.py is not copied"


def test_worker_and_listener_read_the_settings_the_seed_writes():
    services = _compose()["services"]
    written = services["seed"]["command"][services["seed"]["command"].index("--settings-file") + 1]
    for name in ("worker", "listener"):
        assert services[name]["environment"][SETTINGS_FILE_VARIABLE] == written
        assert any(v.split(":")[1] == written.rsplit("/", 1)[0] for v in services[name]["volumes"])
        assert services[name]["depends_on"]["seed"]["condition"] == "service_completed_successfully"
