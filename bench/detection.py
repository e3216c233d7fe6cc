"""Detection throughput: every rule (irflow's Python and windowed rules and the 57 Sigma rules of the
corpus in tests/data) over the Invictus CloudTrail stream repeated to at least 100,000 events, beside the
time `json.loads` alone takes on the same bytes, measured in the same run (median of several rounds).

Target: evaluating all rules costs no more than parsing the JSON (ratio <= 1.0).

    .venv/bin/python -m bench.detection [--events 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from irflow.detection.catalogue import load_catalogue
from tests.data import CORPORA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    records = [json.loads(line)["event"] for line in (CORPORA / "cloudtrail" / "invictus_stream.jsonl").open()]
    lines = [json.dumps(r).encode() for r in records]
    repeated = (lines * (args.events // len(lines) + 1))[: args.events]
    total_bytes = sum(len(b) for b in repeated)
    catalogue = load_catalogue([CORPORA / "sigma" / "rules"])
    print(
        f"{len(catalogue.rules)} rules ({sum(r.kind == 'sigma' for r in catalogue.rules)} Sigma, "
        f"{len(catalogue.unsupported)} Sigma file(s) unsupported); {len(repeated):,} events, "
        f"{total_bytes / 1e6:.1f} MB"
    )
    events = [json.loads(b) for b in repeated]

    parse_times, rule_times, alerts = [], [], 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        for line in repeated:
            json.loads(line)
        parse_times.append(time.perf_counter() - started)

        engine = load_catalogue([CORPORA / "sigma" / "rules"]).engine()  # fresh windowed state each round
        started = time.perf_counter()
        alerts = 0
        for event in events:
            alerts += len(engine.evaluate(event))
        rule_times.append(time.perf_counter() - started)

    parse, rules = statistics.median(parse_times), statistics.median(rule_times)
    print(f"json.loads alone:     {parse:.3f} s median ({len(repeated) / parse:,.0f} events/s)")
    print(f"all rules evaluated:  {rules:.3f} s median ({len(repeated) / rules:,.0f} events/s), {alerts:,} alerts")
    print(f"ratio rules / parse:  {rules / parse:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
