"""A clone passes alone: nothing in the project refers to a folder beside the repository, and a test or a
benchmark that reads a file outside it fails (tests/boundary.py watches every open)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import boundary
from tests.conftest import COLLECTION_VIOLATIONS
from tests.support import REPO


def test_nothing_outside_the_repository_was_read_while_collecting():
    assert not COLLECTION_VIOLATIONS, "; ".join(map(str, COLLECTION_VIOLATIONS))


def test_the_guard_records_a_read_outside_the_repository():
    elsewhere = Path("/") / f"absent-{uuid.uuid4().hex}" / "findings.jsonl"  # outside, wherever the clone is
    with contextlib.suppress(FileNotFoundError):  # the open is seen before it fails
        elsewhere.read_text()
    crossed = boundary.take()
    assert [v.path for v in crossed] == [str(elsewhere)]
    assert "test_boundary.py" in crossed[0].opened_by


def test_the_guard_lets_the_repository_and_temporary_files_through(tmp_path):
    (tmp_path / "x").write_text("x")
    (REPO / "tests" / "data" / "corpora" / "README.md").read_text()
    assert boundary.take() == []
    assert not boundary.outside(REPO / "tests" / "data" / "corpora" / "guardduty" / "findings.jsonl")


@pytest.mark.parametrize(
    "repo, roots, path, crosses",
    [
        # the case this guard exists for: a corpus in a folder beside the clone
        ("/srv/ci/irflow", ("/tmp", "/usr"), "/srv/ci/shared/corpora/findings.jsonl", True),
        ("/srv/ci/irflow", ("/tmp", "/usr"), "/srv/ci/irflow/tests/data/corpora/findings.jsonl", False),
        # a clone inside the temporary folder: its neighbours are still beside it, other temporary files are not
        ("/tmp/ci/irflow", ("/tmp", "/usr"), "/tmp/ci/shared/corpora/findings.jsonl", True),
        ("/tmp/ci/irflow", ("/tmp", "/usr"), "/tmp/pytest-of-root/pytest-1/x", False),
        # a clone in the home folder: the tools' own configuration beside it is allowed, nothing else
        ("/root/irflow", ("/root/.aws", "/usr"), "/root/.aws/config", False),
        ("/root/irflow", ("/root/.aws", "/usr"), "/root/shared/corpora/findings.jsonl", True),
        ("/root/irflow", ("/root/.aws", "/usr"), "/usr/lib/python3.11/json/__init__.py", False),
        ("/root/irflow", ("/root/.aws", "/usr"), "/data/corpora/findings.jsonl", True),
    ],
)
def test_what_crosses_the_boundary_wherever_the_clone_is(repo, roots, path, crosses):
    assert boundary.outside(path, repo=Path(repo), roots=roots) is crosses


def test_a_module_run_under_the_guard_fails_when_it_reads_outside():
    elsewhere = Path("/") / f"absent-{uuid.uuid4().hex}.json"
    result = subprocess.run(
        [sys.executable, "-m", "tests.boundary", "json.tool", str(elsewhere)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{boundary.REPORT_PREFIX}{elsewhere}" in result.stderr


def test_no_file_in_the_project_names_a_folder_beside_it():
    pattern = re.compile(r"\.\./" + "shared" + r"|parents\[2\]\s*/\s*\"" + "shared")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    offenders = []
    for name in tracked.splitlines():
        path = REPO / name
        if path.suffix in {".jsonl", ".json"} or not path.is_file():
            continue  # data: third parties' words, not paths the project reads
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
