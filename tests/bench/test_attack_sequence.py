"""bench.attack_sequence runs on a fresh clone, through real processes, and prints an attack sequence's
containment beside the same two resources arriving as two findings, the ratio, the goals, and a readiness round
beside its unit (two rounds here: figures never asserted as timings)."""

from __future__ import annotations

import re

from tests.bench.support import run_bench

FIGURE = r"median +(\d+) ms, p99 +(\d+) ms, max +(\d+) ms"


def _figure(out: str, label: str) -> tuple[int, int, int]:
    found = re.search(rf"^ *{label} *: {FIGURE}$", out, re.MULTILINE)
    assert found, out
    median, p99, most = (int(n) for n in found.groups())
    assert 0 < median <= p99 <= most, found.group(0)
    return median, p99, most


def test_bench_attack_sequence_prints_both_containments_the_ratio_goals_and_a_readiness_round():
    out = run_bench("bench.attack_sequence", "--rounds", "2", "--warmup", "0", "--readiness-rounds", "2", timeout=300)
    assert "2 rounds: an attack sequence" in out, out
    for side in ("two findings", "attack sequence"):
        _figure(out, f"{side}, queue -> instance isolated")
        _figure(out, f"{side}, queue -> key Inactive")
    findings, _, _ = _figure(out, re.escape("two findings, queue -> both contained (baseline)"))
    sequence, _, _ = _figure(out, "attack sequence, queue -> every resource contained")
    # From the incidents' own records: the fan-out, and each side's slower incident from received to contained.
    for part in ("parent received -> children received", "(slower child)", "(slower incident)"):
        _figure(out, "records: .*" + re.escape(part))

    ratio = re.search(r"^ratio sequence / two findings \(medians\): (\d+\.\d\d)$", out, re.MULTILINE)
    assert ratio and abs(float(ratio.group(1)) - sequence / findings) < 0.05, out
    added = re.search(r"^fan-out adds \(medians\): (-?\d+) ms$", out, re.MULTILINE)
    assert added and abs(int(added.group(1)) - (sequence - findings)) <= 1, out
    goals = re.findall(r"^goal: (.*) -> (?:met|NOT met)$", out, re.MULTILINE)
    assert len(goals) == 5, out  # issue 14's three (`print_goals`), then the fan-out's two
    assert goals[3].startswith("fan-out adds <=") and goals[4].startswith("ratio ("), goals

    # irflow preflight on the ready account: every check passes, and a round is told in DescribeInstances calls.
    checks = re.search(r"ready account \((\d+) checks, (\d+) pass\), 2 rounds", out)
    assert checks and int(checks.group(1)) == int(checks.group(2)) > 0, out
    unit, _, _ = _figure(out, re.escape("one DescribeInstances call (the unit)"))
    readiness, _, _ = _figure(out, re.escape("one readiness round (run_all_aws_checks)"))
    calls = re.search(r"^a readiness round costs (\d+) DescribeInstances calls \(medians\)$", out, re.MULTILINE)
    assert calls and abs(int(calls.group(1)) - readiness / unit) <= 0.1 * readiness / unit + 1, out
