"""bench.detection runs on a fresh clone and prints its figure beside its baseline (a small size here: the
figure itself is measured with `python -m bench.detection`, never asserted as a timing)."""

from __future__ import annotations

import re

from tests.bench.support import run_bench


def test_bench_detection_prints_rules_beside_json_loads():
    out = run_bench("bench.detection", "--events", "3000", "--rounds", "1", timeout=300)
    assert re.search(r"135 rules \(56 Sigma, 1 Sigma file\(s\) unsupported\); 3,000 events", out), out
    assert re.search(r"json.loads alone: +[\d.]+ s median", out), out
    assert re.search(r"ratio rules / parse: +[\d.]+", out), out
