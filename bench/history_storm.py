"""A storm of findings into one incident: does every run's history stay bounded, and does the incident survive it?

One IAM user incident is contained and waits for a decision; N repeats of its finding (GuardDuty's count going up,
each its own queue message with its original record) are signalled at it, `--in-flight` at a time. The incident
continues as new whenever a run's history passes IRFLOW_HISTORY_EVENTS_PER_RUN (4000 by default). Printed: how long
the storm took to send and to be absorbed, every run's history length, the findings counted, then an analyst's
reject through the CLI's update path, how long the undo took, and whether the key is Active again.

    .venv/bin/python -m bench.history_storm [--findings 10000] [--events-per-run 4000] [--in-flight 64]
    .venv/bin/python -m bench.history_storm --worker-process   # worker.py on its own, as deployed (bound 4000)

By default the worker runs in this process, beside moto and the storm's sender (they share one interpreter);
`--worker-process` runs the servers and worker.py as processes, as `make run` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from bench.common import in_process_stack
from irflow.cli.incidents import _decide
from irflow.devstack.demo import seed_workload
from irflow.models.incident import Status
from irflow.models.settings import IrflowSettings, get_settings
from irflow.temporal_client import exit_now


async def in_processes(findings: int, in_flight: int) -> None:
    """The worker as its own process, at the bound IRFLOW_HISTORY_EVENTS_PER_RUN gives it."""
    from bench.common import process_stack
    from tests.support import wait_for
    from tests.workflows.test_iam_user_playbook import observed_user
    from tests.workflows.test_incident_history import Storm, open_access_key_incident, report_json, run_lengths

    async with process_stack() as stack:
        workload = seed_workload(name="storm")
        env = {**workload.worker_environment(), "TEMPORAL_ADDRESS": stack.temporal_address}
        stack.group.start("worker", [sys.executable, "worker.py"], env=env)
        before = observed_user(workload)
        handle = await open_access_key_incident(stack.client, IrflowSettings(), workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=120)
        storm = Storm(workload, findings)
        started = time.monotonic()
        sent = await storm.send(stack.client, handle.id, in_flight)
        state = await wait_for(handle, lambda s: s.finding_deliveries == findings + 1, timeout=600)
        absorbed = time.monotonic() - started
        failed: list[list[int]] = []
        lengths = await run_lengths(stack.client, handle.id, failed)
        started = time.monotonic()
        outcome = await _decide(stack.client, handle.id, "reject", {"reason": "storm over"}, "alice", None)
        final = await handle.result()
        undone = time.monotonic() - started
        report = report_json(workload, final)
        restored = observed_user(workload) == before
    _print(findings, in_flight, 4000, storm, sent, absorbed, state, lengths, failed, outcome, final, undone)
    print(f"key Active again, user as before: {restored}; report counts {report['findings_absorbed']} findings")


async def main(findings: int, events_per_run: int, in_flight: int) -> None:
    from tests.support import running_worker, wait_for
    from tests.workflows.test_iam_user_playbook import observed_user
    from tests.workflows.test_incident_history import Storm, open_access_key_incident, report_json, run_lengths

    async with in_process_stack() as env:
        workload = seed_workload(name="storm")
        os.environ.update(workload.worker_environment())
        get_settings.cache_clear()
        before = observed_user(workload)
        async with running_worker(env.client, history_events_per_run=events_per_run) as settings:
            handle = await open_access_key_incident(env.client, settings, workload)
            await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
            storm = Storm(workload, findings)
            started = time.monotonic()
            sent = await storm.send(env.client, handle.id, in_flight)
            state = await wait_for(handle, lambda s: s.finding_deliveries == findings + 1, timeout=600)
            absorbed = time.monotonic() - started
            failed: list[list[int]] = []
            lengths = await run_lengths(env.client, handle.id, failed)
            started = time.monotonic()
            outcome = await _decide(env.client, handle.id, "reject", {"reason": "storm over"}, "alice", None)
            final = await handle.result()
            undone = time.monotonic() - started
        report = report_json(workload, final)
        restored = observed_user(workload) == before
    _print(findings, in_flight, events_per_run, storm, sent, absorbed, state, lengths, failed, outcome, final, undone)
    print(f"key Active again, user as before: {restored}; report counts {report['findings_absorbed']} findings")


def _print(findings, in_flight, events_per_run, storm, sent, absorbed, state, lengths, failed, outcome, final, undone):
    print(f"findings signalled: {findings} in {sent:.1f} s ({findings / sent:.0f}/s, {in_flight} in flight)")
    print(f"signals refused by the server and sent again: {storm.refused}")
    print(f"all absorbed after: {absorbed:.1f} s; counted: {state.absorbed_count()} (expected {findings + 1})")
    print(f"IRFLOW_HISTORY_EVENTS_PER_RUN={events_per_run}: {len(lengths)} runs, longest {max(lengths)} events")
    print(f"history lengths per run: {lengths}")
    print(f"failed workflow tasks per run (a switch losing the race with a signal, 100 signals left waiting): {failed}")
    print(f"reject accepted: {outcome.accepted}; undone and reported in {undone:.1f} s; status {final.status}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--events-per-run", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--worker-process", action="store_true", help="worker.py as its own process")
    arguments = parser.parse_args()
    if arguments.worker_process:
        asyncio.run(in_processes(arguments.findings, arguments.in_flight))
    else:
        asyncio.run(main(arguments.findings, arguments.events_per_run, arguments.in_flight))
    exit_now(0)  # the SDK's runtime threads can crash interpreter teardown (see exit_now)
