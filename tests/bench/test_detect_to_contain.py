"""bench.detect_to_contain runs on a fresh clone, through real processes, and prints its figures beside the
bare responder's (small sizes here: never asserted as timings)."""

from __future__ import annotations

import re

from tests.bench.support import run_bench


def test_bench_detect_to_contain_measures_events_through_real_processes():
    out = run_bench("bench.detect_to_contain", "--events", "2", "--instances", "2", "--warmup", "1", timeout=300)
    for label in ("bare responder", "queue -> key Inactive", "containment applied", "listener received"):
        assert re.search(rf"{label}.*median +\d+ ms, p99 +\d+ ms", out), out
    assert "ratio irflow / bare (medians):" in out
    # The EC2 part: every ENI isolated, beside the same isolation calls, with issue 14's goals met or not.
    for label in ("every ENI isolated", "seen from outside \\(baseline\\)"):
        assert re.search(rf"{label}.*median +\d+ ms, p99 +\d+ ms", out), out
    assert len(re.findall(r"^goal: .* -> (met|NOT met)$", out, re.MULTILINE)) == 3, out
