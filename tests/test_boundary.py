"""A clone passes alone: nothing in the project refers to a folder beside the repository, and a test or a
benchmark that reads a file outside it fails (tests/boundary.py watches every open)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import uuid

from tests import boundary
from tests.conftest import COLLECTION_VIOLATIONS
from tests.support import REPO


def test_nothing_outside_the_repository_was_read_while_collecting():
    assert not COLLECTION_VIOLATIONS, "; ".join(map(str, COLLECTION_VIOLATIONS))


def test_the_guard_records_a_read_beside_the_repository():
    beside = REPO.parent / f"absent-{uuid.uuid4().hex}" / "findings.jsonl"
    with contextlib.suppress(FileNotFoundError):  # the open is seen before it fails
        beside.read_text()
    crossed = boundary.take()
    assert [v.path for v in crossed] == [str(beside)]
    assert "test_boundary.py" in crossed[0].opened_by


def test_the_guard_lets_the_repository_and_temporary_files_through(tmp_path):
    (tmp_path / "x").write_text("x")
    (REPO / "tests" / "data" / "corpora" / "README.md").read_text()
    assert boundary.take() == []
    assert boundary.outside(REPO.parent / "shared" / "corpora" / "guardduty" / "findings.jsonl")
    assert not boundary.outside(REPO / "tests" / "data" / "corpora" / "guardduty" / "findings.jsonl")


def test_a_module_run_under_the_guard_fails_when_it_reads_outside():
    beside = REPO.parent / f"absent-{uuid.uuid4().hex}.json"
    result = subprocess.run(
        [sys.executable, "-m", "tests.boundary", "json.tool", str(beside)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{boundary.REPORT_PREFIX}{beside}" in result.stderr


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
