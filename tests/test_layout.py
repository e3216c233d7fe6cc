"""The house rules that keep irflow easy to enter, checked rather than hoped for:

- tests mirror the source: the tests of `activities/iam_user.py` are `tests/activities/test_iam_user.py`
  (or `test_iam_user_<topic>.py`), and every module has its tests where a newcomer looks for them;
- modules stay small: none in `workflows/` over 350 lines, no Python file over 500;
- `workflows/` has no import circle, and no playbook imports the incident workflow.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from tests.support import REPO

# Tests that run whole processes or a browser: they test the system, not one module.
SYSTEM_TEST_FOLDERS = {"tests/e2e", "tests/ui"}
# Repository-wide rules, checked by the tests at the top of tests/.
REPOSITORY_TESTS = {"tests/test_layout.py"}
# The embedded stand-in (moto server, demo workload, `make run`, the compose seed) is the ground every AWS
# test and every end-to-end test stands on (tests/conftest.py, tests/e2e/): it is tested by being used.
TEST_INFRASTRUCTURE = ("irflow/devstack/",)
# Modules only observable through the one that uses them: each names the test file that exercises it, which
# must exist and name the module.
TESTED_THROUGH = {
    "activities/incidents.py": "tests/workflows/test_iam_role_playbook.py",  # an incident opening another
    "activities/triage.py": "tests/workflows/test_triage_playbook.py",
    "irflow/models/ec2.py": "tests/irflow/models/test_tagging.py",  # pure data: built and read there
    "irflow/models/iam.py": "tests/irflow/models/test_tagging.py",
    "irflow/models/lambda_function.py": "tests/irflow/models/test_tagging.py",
    "irflow/models/s3.py": "tests/irflow/models/test_tagging.py",
    "irflow/models/errors.py": "tests/activities/test_aws.py",  # the typed failures activities raise
    "irflow/models/evidence.py": "tests/irflow/test_custody.py",  # evidence records, built and verified there
    "irflow/models/postconditions.py": "tests/activities/test_postconditions.py",  # what the checks return
    "workflows/notifications.py": "tests/workflows/test_decisions_timeout.py",  # reminders, escalations: SNS
    "activities/governor.py": "tests/workflows/test_governor.py",  # the reservation, through the workflow
    "irflow/models/governor.py": "tests/workflows/test_governor.py",
    "irflow/models/readiness.py": "tests/workflows/test_readiness.py",  # what the checks return, read there
    "irflow/models/source_findings.py": "tests/activities/test_source_findings_naming.py",
    "workflows/closing.py": "tests/workflows/test_incident_source_findings.py",
    "worker.py": "tests/e2e/test_processes.py",  # entry points: run as processes
    "starter.py": "tests/e2e/test_processes.py",
}
MAX_LINES = 500
MAX_WORKFLOW_LINES = 350


def _tracked(*patterns: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(name for name in listed if (REPO / name).exists())


def _source_modules() -> list[str]:
    """Product code: everything but tests, benchmarks, examples and scripts; package markers left out."""
    return [
        name
        for name in _tracked("*.py")
        if not name.startswith(("tests/", "bench/", "examples/", "scripts/"))
        and Path(name).name not in ("__init__.py", "__main__.py")
    ]


def _mirrored_by(test_file: str) -> Path | None:
    """The source a test file mirrors: `tests/<folder>/test_<name>[_<topic>].py` tests `<folder>/<name>` (a
    module, a package, or a file such as infra/findings-intake.yaml); top-level tests may test tests/ helpers
    or the repository's own files (README.md, docker-compose.yml)."""
    path = Path(test_file)
    folder = path.parent.relative_to("tests")
    folders = [REPO / folder] if str(folder) != "." else [REPO, REPO / "tests"]
    words = path.stem.removeprefix("test_").split("_")
    for length in range(len(words), 0, -1):
        name = "_".join(words[:length])
        for base in folders:
            if (base / f"{name}.py").exists() or (base / name).is_dir():
                return base / name
            for candidate in base.glob("*"):
                if candidate.is_file() and candidate.stem.lower().replace("-", "_") == name:
                    return candidate
    return None


def test_every_test_file_is_named_after_the_source_it_tests():
    unmirrored = [
        test_file
        for test_file in _tracked("tests/*.py")
        if Path(test_file).name.startswith("test_")
        and test_file not in REPOSITORY_TESTS
        and not any(test_file.startswith(folder + "/") for folder in SYSTEM_TEST_FOLDERS)
        and _mirrored_by(test_file) is None
    ]
    assert not unmirrored, f"test files that mirror no module (rename them after what they test): {unmirrored}"


def test_every_module_has_its_tests_where_a_newcomer_looks():
    mirrored = {
        _mirrored_by(test_file) for test_file in _tracked("tests/*.py") if Path(test_file).name.startswith("test_")
    }
    missing = []
    for module in _source_modules():
        path = REPO / module
        if path.with_suffix("") in mirrored or module in TESTED_THROUGH or module.startswith(TEST_INFRASTRUCTURE):
            continue
        missing.append(module)
    assert not missing, f"modules without tests/<folder>/test_<module>.py: {missing}"


def test_modules_tested_elsewhere_say_where_and_that_file_tests_them():
    for module, test_file in TESTED_THROUGH.items():
        assert (REPO / module).exists(), f"{module} is gone: drop it from TESTED_THROUGH"
        text = (REPO / test_file).read_text()
        assert Path(module).stem in text, f"{test_file} does not mention {module}"


def test_no_python_file_is_over_500_lines_and_no_workflow_module_over_350():
    too_long = {}
    for name in _tracked("*.py"):
        lines = len((REPO / name).read_text().splitlines())
        limit = MAX_WORKFLOW_LINES if name.startswith("workflows/") else MAX_LINES
        if lines > limit:
            too_long[name] = lines
    assert not too_long, f"split these (limit {MAX_LINES}, workflows/ {MAX_WORKFLOW_LINES}): {too_long}"


def _imports_of(source: str) -> set[str]:
    """The workflows modules a module imports, TYPE_CHECKING imports included: a circle hidden behind
    TYPE_CHECKING is still a circle."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "workflows":
            imported |= {f"workflows.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workflows."):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names if alias.name.startswith("workflows.")}
    return imported


def _workflow_imports() -> dict[str, set[str]]:
    graph = {}
    for name in _tracked("workflows/*.py"):
        module = name.removesuffix(".py").replace("/", ".")
        graph[module] = _imports_of((REPO / name).read_text()) - {module}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            found = visit(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    return next((found for module in sorted(graph) if (found := visit(module, []))), None)


def test_workflows_has_no_import_circle():
    circle = _circle(_workflow_imports())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_no_playbook_imports_the_incident_workflow():
    graph = _workflow_imports()
    playbooks = [m for m in graph if m.endswith("_playbook") or m == "workflows.playbook"]
    assert len(playbooks) >= 8
    offenders = [m for m in playbooks if "workflows.incident" in graph[m]]
    assert not offenders, f"playbooks importing workflows.incident: {offenders}"


def test_the_checks_read_real_imports_and_see_a_circle_hidden_behind_type_checking():
    """The checks above would pass on anything if they read no imports."""
    graph = _workflow_imports()
    assert "workflows.record" in graph["workflows.incident"]
    assert "workflows.playbook" in graph["workflows.ec2_playbook"]
    hidden = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workflows.incident import IncidentWorkflow\n"
    )
    assert _imports_of(hidden) == {"workflows.incident"}
    assert _circle({"workflows.incident": {"workflows.ec2_playbook"}, "workflows.ec2_playbook": {"workflows.incident"}})
    assert _circle({"workflows.incident": {"workflows.ec2_playbook"}, "workflows.ec2_playbook": set()}) is None


def test_the_mirror_rule_knows_a_stray_test_file():
    assert _mirrored_by("tests/activities/test_iam_user.py") == REPO / "activities" / "iam_user"
    assert _mirrored_by("tests/irflow/intake/test_router_table_asff.py") == REPO / "irflow" / "intake" / "router"
    assert _mirrored_by("tests/workflows/test_compensation.py") is None
