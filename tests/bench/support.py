"""Running a benchmark the way the smoke tests do: as its own process, under the repository boundary."""

from __future__ import annotations

import subprocess
import sys

from tests import boundary
from tests.support import REPO


def run_bench(*argv: str, timeout: float) -> str:
    """Run a benchmark under the repository boundary: it fails if it reads a file outside the clone."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.boundary", *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert boundary.REPORT_PREFIX not in result.stderr, result.stderr
    return result.stdout
