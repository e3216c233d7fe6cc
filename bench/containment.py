"""How fast does irflow contain an EC2 instance?

Runs N incidents through a real Temporal dev server and worker against moto (in-process), and prints
the median and p95 of detection→contained (workflow start to the last containment step) beside the
baseline measured in the same run: the same seven containment steps made directly, one after another,
with no Temporal in between. The ratio is what durability costs; issue 14's goals (median <= 2x the
baseline, p99 <= 2x the median) are printed met or not.

    .venv/bin/python -m bench.containment [--incidents 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime

from bench.common import in_process_stack, percentile, print_goals
from irflow.devstack.demo import seed_workload
from irflow.models.ec2 import Ec2StepInput, Ec2Target
from irflow.models.incident import Status
from irflow.models.settings import get_settings
from irflow.temporal_client import exit_now


def _direct_containment(region: str) -> float:
    """Baseline: the seven containment calls, straight, on a fresh workload."""
    from activities import ec2_context
    from workflows.ec2_playbook import EC2_CONTAINMENT_STEPS

    workload = seed_workload(region=region, name=f"base{time.monotonic_ns()}")
    target = Ec2Target(
        incident_id=f"bench-{time.monotonic_ns()}",
        account_id=workload.account_id,
        region=region,
        instance_id=workload.instance_id,
    )
    started = time.perf_counter()
    step = Ec2StepInput(
        target=target, prior=ec2_context.describe_instance_context(target), issued_before=datetime.now(UTC)
    )
    for containment in EC2_CONTAINMENT_STEPS:  # the playbook's own steps, each on the argument it takes
        containment.activity(containment.argument(step))
    return time.perf_counter() - started


async def _irflow_containment(env, region: str, egress: bool = True) -> float:
    from tests.support import open_incident, running_worker, wait_for

    workload = seed_workload(region=region, name=f"irf{time.monotonic_ns()}")
    os.environ.update(workload.worker_environment())
    if not egress:
        for name in ("IRFLOW_FORENSIC_EGRESS", "IRFLOW_QUARANTINE_INSTANCE_PROFILE"):
            os.environ.pop(name)
    get_settings.cache_clear()
    async with running_worker(env.client) as settings:
        _, handle = await open_incident(env.client, settings, workload)
        state = await wait_for(handle, lambda s: s.contained_at is not None or s.status.is_final, timeout=60)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        await handle.signal("reject", {"by": "alice", "reason": "benchmark cleanup"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK, final.failure_reason
    return (state.contained_at - state.received_at).total_seconds()


async def main(incidents: int) -> None:
    async with in_process_stack() as env:
        _direct_containment("us-east-1")  # warm-up: imports, first clients; not measured
        await _irflow_containment(env, "us-east-1")
        baseline, measured, plain = [], [], []
        for number in range(incidents):
            baseline.append(_direct_containment("us-east-1"))
            # Which of the two goes first alternates: moto's state grows with every incident.
            for egress in (True, False) if number % 2 == 0 else (False, True):
                (measured if egress else plain).append(await _irflow_containment(env, "us-east-1", egress))
            latest = (
                f"baseline {baseline[-1] * 1000:.0f} ms, irflow {measured[-1] * 1000:.0f} ms, "
                f"without forensic egress {plain[-1] * 1000:.0f} ms"
            )
            print(f"  {number + 1}/{incidents}: {latest}", flush=True)
    base_median, irflow_median = statistics.median(baseline), statistics.median(measured)
    print(f"incidents: {incidents} (moto in-process, Temporal dev server, 2-core machine)")
    print(
        f"baseline  direct boto3 containment calls: median {base_median * 1000:.0f} ms, "
        f"p95 {percentile(baseline, 0.95) * 1000:.0f} ms"
    )
    print(
        f"irflow    detection -> contained:         median {irflow_median * 1000:.0f} ms, "
        f"p95 {percentile(measured, 0.95) * 1000:.0f} ms"
    )
    plain_median = statistics.median(plain)
    print(
        f"irflow    without forensic egress:         median {plain_median * 1000:.0f} ms, "
        f"p95 {percentile(plain, 0.95) * 1000:.0f} ms"
    )
    print(f"ratio irflow/baseline (medians): {irflow_median / base_median:.2f}")
    print(f"ratio with/without forensic egress (medians): {irflow_median / plain_median:.2f}")
    print_goals(measured, baseline, limit_seconds=1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=20)
    asyncio.run(main(parser.parse_args().incidents))
    exit_now(0)  # the SDK's runtime threads can crash interpreter teardown (see exit_now)
