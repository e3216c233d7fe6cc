"""The detection benchmarks run on a fresh clone and print their figures beside their baselines (small
sizes here: the figures themselves are measured with `python -m bench.…`, never asserted as timings)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests import boundary
from tests.support import REPO


def _run(*argv: str, timeout: float) -> str:
    """Run a benchmark under the repository boundary: it fails if it reads a file outside the clone."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.boundary", *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert boundary.REPORT_PREFIX not in result.stderr, result.stderr
    return result.stdout


def test_bench_detection_prints_rules_beside_json_loads():
    out = _run("bench.detection", "--events", "3000", "--rounds", "1", timeout=300)
    assert re.search(r"135 rules \(56 Sigma, 1 Sigma file\(s\) unsupported\); 3,000 events", out), out
    assert re.search(r"json.loads alone: +[\d.]+ s median", out), out
    assert re.search(r"ratio rules / parse: +[\d.]+", out), out


def test_bench_detect_to_contain_measures_events_through_real_processes():
    out = _run("bench.detect_to_contain", "--events", "2", "--warmup", "1", timeout=300)
    for label in ("bare responder", "queue -> key Inactive", "containment applied", "listener received"):
        assert re.search(rf"{label}.*median +\d+ ms, p99 +\d+ ms", out), out
    assert "ratio irflow / bare (medians):" in out
