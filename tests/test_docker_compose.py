"""No Docker engine runs here, so the compose file is checked for what would break `docker compose up` (and
`docker compose --profile production up`): every service's command must exist in the image, every image must be
a released version, the settings passed must be real settings, and services must start in the right order."""

from __future__ import annotations

import os
import re
import subprocess

import yaml
from typer.testing import CliRunner

from irflow.models.settings import SETTINGS_FILE_VARIABLE, IrflowSettings
from tests.support import REPO

PRODUCTION = {"postgresql", "temporal-schema", "temporal-server", "temporal-namespace", "codec-server", "temporal-ui"}
IRFLOW_SERVICES = ("setup", "schedule", "worker", "listener")  # the ones that talk to Temporal


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _interpolated(value: str, variables: dict[str, str]) -> str:
    """`${NAME:-default}` as compose reads it: NAME's value when set and not empty, else the default."""
    return re.sub(r"\$\{([A-Z0-9_]+):-([^}]*)\}", lambda m: variables.get(m[1]) or m[2], value)


def _script(service: dict) -> str:
    """A shell service's script (`entrypoint: [sh, -c]`), with compose's `$$` read as the shell gets it."""
    assert service["entrypoint"][0] == "/bin/sh" and "c" in service["entrypoint"][1]
    return "\n".join(service["command"]).replace("$$", "$")


def test_compose_has_temporal_with_ui_and_scalable_workers():
    services = _compose()["services"]
    assert {"temporal", "worker", "setup", "aws"} <= set(services)
    assert "8233:8233" in services["temporal"]["ports"], "the Temporal UI is published"
    assert services["worker"]["deploy"]["replicas"] >= 2, "workers scale out"
    assert services["listener"]["deploy"]["replicas"] >= 2, "two listeners: either one can stop"


def test_irflow_services_reach_the_dev_server_by_default_and_the_cluster_when_told():
    services = _compose()["services"]
    for name in IRFLOW_SERVICES:
        address = services[name]["environment"]["TEMPORAL_ADDRESS"]
        assert _interpolated(address, {}) == "temporal:7233", name
        assert _interpolated(address, {"TEMPORAL_SERVER_HOST": "temporal-server"}) == "temporal-server:7233", name
    assert any(port.endswith(":7233") for port in services["temporal-server"]["ports"]), "the cluster's frontend"


def test_every_image_is_pinned_to_a_released_version():
    for name, service in _compose()["services"].items():
        if "image" not in service:
            assert "build" in service, f"{name}: neither an image nor a build"
            continue
        image, _, tag = service["image"].rpartition(":")
        assert image and "/" not in tag, f"{name}: {service['image']} has no tag"
        assert re.fullmatch(r"\d+(\.\d+)+", tag), f"{name}: {service['image']} is not pinned to a version"


def test_the_servers_have_health_checks_that_their_dependants_wait_for():
    services = _compose()["services"]
    for name in ("temporal", "postgresql", "temporal-server"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    waits = {
        ("setup", "temporal"): "service_healthy",
        ("temporal-schema", "postgresql"): "service_healthy",
        ("temporal-server", "postgresql"): "service_healthy",
        ("temporal-server", "temporal-schema"): "service_completed_successfully",
        ("temporal-namespace", "temporal-server"): "service_healthy",
        ("temporal-ui", "temporal-server"): "service_healthy",
        ("setup", "temporal-namespace"): "service_completed_successfully",
    }
    for (service, dependency), condition in waits.items():
        assert services[service]["depends_on"][dependency]["condition"] == condition, (service, dependency)
    # without the production profile there is no namespace service: `setup` must start without it
    assert services["setup"]["depends_on"]["temporal-namespace"]["required"] is False


def test_the_production_profile_runs_temporal_as_it_is_deployed():
    services = _compose()["services"]
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == PRODUCTION
    assert all(services[name]["profiles"] == ["production"] for name in PRODUCTION)
    assert services["temporal-server"]["image"].startswith("temporalio/server:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["postgresql"]["image"].startswith("postgres:")
    data = [v for v in services["postgresql"]["volumes"] if v.endswith(":/var/lib/postgresql/data")]
    assert data and data[0].split(":")[0] in _compose()["volumes"], "the database outlives its container"
    # both databases made and migrated by Temporal's own schema tool, from the admin-tools of the server's version
    schema = services["temporal-schema"]
    assert schema["image"].split(":")[1] == services["temporal-server"]["image"].split(":")[1]
    server = services["temporal-server"]["environment"]
    assert server["DB"] == "postgres12" and server["POSTGRES_SEEDS"] == "postgresql"
    assert "temporal operator namespace create -n default" in _script(services["temporal-namespace"])


def test_the_schema_service_creates_both_databases_once_and_migrates_them_on_every_run(tmp_path):
    """The schema script run by sh against a stand-in temporal-sql-tool that records its calls and, like the real
    one, refuses to create a database that exists."""
    tool = tmp_path / "temporal-sql-tool"
    tool.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> "$CALLS"\n'
        'db=$(echo "$*" | sed -n "s/.*--db \\([a-z_]*\\) .*/\\1/p")\n'
        'case "$*" in *" create") [ ! -e "$STATE/$db" ] || exit 1; touch "$STATE/$db";; esac\n'
    )
    tool.chmod(0o755)
    (tmp_path / "state").mkdir()
    service = _compose()["services"]["temporal-schema"]
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")}
    env["STATE"] = str(tmp_path / "state")
    runs = []
    for _ in range(2):
        (tmp_path / "calls").write_text("")
        done = subprocess.run([*service["entrypoint"], _script(service)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        runs.append([line.split(" --db ")[1] for line in (tmp_path / "calls").read_text().splitlines()])
    versioned = "/etc/temporal/schema/postgresql/v12/{}/versioned"
    assert runs[0] == [
        "temporal create",
        "temporal setup-schema -v 0.0",
        f"temporal update-schema -d {versioned.format('temporal')}",
        "temporal_visibility create",
        "temporal_visibility setup-schema -v 0.0",
        f"temporal_visibility update-schema -d {versioned.format('visibility')}",
    ]
    assert runs[1] == [
        "temporal create",
        f"temporal update-schema -d {versioned.format('temporal')}",
        "temporal_visibility create",
        f"temporal_visibility update-schema -d {versioned.format('visibility')}",
    ], "a second run (an upgrade) migrates; it never sets the base schema up again"
    every = (tmp_path / "calls").read_text()
    assert "--plugin postgres12 --ep postgresql -p 5432 -u temporal" in every


def test_the_production_ui_decodes_payloads_through_irflows_codec_server():
    services = _compose()["services"]
    codec = services["codec-server"]
    port = codec["command"][codec["command"].index("--port") + 1]
    assert f"{port}:{port}" in codec["ports"], "the browser calls the codec server: its port is published"
    assert services["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{port}"
    ui_port = services["temporal-ui"]["ports"][0].split(":")[0]
    assert codec["environment"]["IRFLOW_CODEC_SERVER_ORIGINS"] == f"http://localhost:{ui_port}"
    assert codec["environment"][SETTINGS_FILE_VARIABLE] == services["worker"]["environment"][SETTINGS_FILE_VARIABLE]


def test_stopping_a_worker_leaves_it_its_drain_time():
    """compose SIGKILLs 10 s after SIGTERM unless told otherwise: a draining worker must be given longer."""
    grace = _compose()["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > IrflowSettings.model_fields["drain_seconds"].default


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
            helped = CliRunner().invoke(app, [command[1], "--help"], env={**os.environ, "COLUMNS": "200"})
            assert helped.exit_code == 0, f"{name}: irflow {command[1]} --help: {helped.output}"
            for option in (part for part in command[2:] if part.startswith("--")):
                assert option in helped.output, f"{name}: irflow {command[1]} has no option {option}"
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
    for name in ("worker", "listener", "codec-server"):
        assert services[name]["environment"][SETTINGS_FILE_VARIABLE] == written
        assert any(v.split(":")[1] == written.rsplit("/", 1)[0] for v in services[name]["volumes"])
        assert services[name]["depends_on"]["seed"]["condition"] == "service_completed_successfully"
