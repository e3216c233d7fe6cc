"""Records the histories that tests/workflows/test_incident_replay.py replays: one finished incident per playbook and
outcome, and runs of the readiness check and the blast-radius governor, each run by the tests' own fixtures
(tests/conftest.py: the Temporal dev server, moto with the demo workload) and written as the JSON of Temporal's
`WorkflowHistory.to_json()`, compacted.

Record from a clean checkout of the commit the histories stand for (what runs in production), never from a
working tree with changes to workflows/. Run it as a module from that checkout's root, so that it runs that
checkout's code (run as a file, it would import whichever checkout is installed in the virtualenv):

    .venv/bin/python -m tests.workflows.record_histories               # every history, into tests/workflows/histories
    .venv/bin/python -m tests.workflows.record_histories -k ec2 --out DIR

It runs this module under pytest, its recorders (`record_*`) taking the place of tests; the files are written
once pytest is done, so the recording reads nothing outside its checkout (tests/boundary.py) wherever it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import boto3
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle

from irflow.devstack import moto_fidelity_findings, moto_fidelity_lambda, moto_fidelity_rds
from irflow.devstack.demo import sample_access_key_finding, sample_bucket_finding, sample_finding, sample_role_finding
from irflow.devstack.demo_lambda import sample_lambda_finding, seed_lambda_function
from irflow.devstack.demo_rds import sample_rds_finding, seed_rds_instance
from irflow.devstack.demo_sequence import workload_attack_sequence
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.governor import governor_id
from irflow.models.incident import IncidentState, Status
from tests.activities.test_readiness import _guardduty_disabled
from tests.support import open_incident, reject_open_incidents, running_worker, wait_for
from tests.workflows.faults import failing_after_acting
from tests.workflows.test_readiness import scheduled
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
INTO = "IRFLOW_RECORD_HISTORIES_INTO"  # the folder the recorders write to, set by main()
APPROVE = {"by": "alice", "comment": "confirmed"}
REJECT = {"by": "bob", "reason": "false positive"}
MALICIOUS_IP = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"  # a role's credentials used from outside
EKS = "Discovery:Kubernetes/SuccessfulAnonymousAccess"


def _without_stack_traces(node):
    """Failures carry the recording machine's Python stack (its paths); a replay reads no stack trace."""
    if isinstance(node, dict):
        return {key: "" if key == "stackTrace" else _without_stack_traces(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_stack_traces(value) for value in node]
    return node


async def _save(name: str, handle: WorkflowHandle) -> None:
    history = await handle.fetch_history()
    compact = json.dumps(_without_stack_traces(json.loads(history.to_json())), separators=(",", ":"))
    (Path(os.environ[INTO]) / f"{name}.json").write_text(compact + "\n")


async def _submitted(client, settings, event: dict) -> WorkflowHandle:
    submission = await submit(client, parse_guardduty(event), settings)
    return client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def _decided(name: str, handle: WorkflowHandle, signal: str, decision: dict, ends: Status) -> IncidentState:
    """Once the incident waits for the analyst: `decision` as `signal`, the incident followed to its end, saved."""
    await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
    await handle.signal(signal, decision)
    state = await handle.result()
    assert state.status == ends, (name, state.status, state.failure_reason)
    await _save(name, handle)
    return state


# --- the instance: every outcome ---


async def record_ec2(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await _decided("ec2_approved", handle, "approve", {**APPROVE, "eradication": "stop"}, Status.RESOLVED)
        # The deployment's governor, after the one automatic containment it granted (it runs on, unfinished).
        await _save("governor_one_reservation", client.get_workflow_handle(governor_id(settings.task_queue)))


async def record_ec2_rejected(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await _decided("ec2_rejected", handle, "reject", REJECT, Status.ROLLED_BACK)


async def record_ec2_released(dev_env, workload):
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await _decided("ec2_released", handle, "release", {"by": "alice", "comment": "rebuilt"}, Status.RESOLVED)


async def record_ec2_containment_approved(dev_env, workload):
    """Low severity: containment itself waits for an analyst, then the eradication question."""
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload, severity=2.0)
        await wait_for(handle, lambda s: s.pending_decision is not None and s.pending_decision.kind == "containment")
        await handle.signal("approve", {"by": "dave"})
        await wait_for(handle, lambda s: s.pending_decision is not None and s.pending_decision.kind == "eradication")
        await _decided(
            "ec2_containment_approved", handle, "approve", {**APPROVE, "eradication": "stop"}, Status.RESOLVED
        )


async def record_ec2_compensated(dev_env, workload):
    """The last containment step acts, then fails for good: the saga undoes every step, newest first."""
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting("revoke_role_sessions")) as settings:
        _, handle = await open_incident(client, settings, workload)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
        assert state.status == Status.ROLLED_BACK and len(state.compensations) == 7, state.compensations
        await _save("ec2_compensated", handle)


async def record_ec2_timed_out(dev_env, workload):
    """Nobody decides within the decision timeout: escalated, still contained; a late approval ends it."""
    client = dev_env.client
    async with running_worker(client, decision_timeout_seconds=2, decision_reminder_seconds=0) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.ESCALATED, timeout=60)
        await handle.signal("approve", {**APPROVE, "eradication": "stop"})
        state = await handle.result()
        assert state.status == Status.RESOLVED and len(state.escalations) == 1
        await _save("ec2_timed_out", handle)


# --- the other playbooks: approved and rejected ---


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_iam_user(dev_env, workload, outcome):
    client = dev_env.client
    event = sample_access_key_finding(workload.iam_user, workload.access_key_id, workload.account_id, workload.region)
    async with running_worker(client) as settings:
        await _outcome(f"iam_user_{outcome}", await _submitted(client, settings, event), outcome)


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_iam_role(dev_env, workload, outcome):
    """Credentials used from outside AWS, from no instance: no instance incident opened beside it."""
    client = dev_env.client
    role_id = boto3.client("iam").get_role(RoleName=workload.role_name)["Role"]["RoleId"]
    event = sample_role_finding(
        workload.role_name,
        role_id,
        account_id=workload.account_id,
        region=workload.region,
        instance_id=None,
        session_name="ci-pipeline",
        finding_type=MALICIOUS_IP,
    )
    async with running_worker(client) as settings:
        await _outcome(f"iam_role_{outcome}", await _submitted(client, settings, event), outcome)


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_s3_bucket(dev_env, workload, outcome):
    client = dev_env.client
    event = sample_bucket_finding(workload.public_bucket, workload.account_id, workload.region)
    async with running_worker(client) as settings:
        await _outcome(f"s3_bucket_{outcome}", await _submitted(client, settings, event), outcome)


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_lambda(dev_env, workload, outcome):
    moto_fidelity_lambda.apply()
    demo = seed_lambda_function(workload.account_id, workload.region)
    client = dev_env.client
    event = sample_lambda_finding(demo.function_name, demo.function_arn, demo.role_arn, demo.account_id, demo.region)
    async with running_worker(client) as settings:
        await _outcome(f"lambda_{outcome}", await _submitted(client, settings, event), outcome)


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_rds(dev_env, workload, outcome):
    moto_fidelity_rds.apply()
    db = seed_rds_instance(workload.account_id, workload.region, workload.vpc_id, workload.subnet_ids, "recorded")
    client = dev_env.client
    event = sample_rds_finding(db.db_instance_id, db.account_id, db.region, cluster_id=db.cluster_id)
    async with running_worker(client) as settings:
        await _outcome(f"rds_{outcome}", await _submitted(client, settings, event), outcome)


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_triage(dev_env, workload, outcome):
    """An EKS finding: nothing irflow contains; evidence and the analyst's call."""
    event = sample_finding("i-0123456789abcdef0", workload.account_id, workload.region, finding_type=EKS)
    event["detail"]["resource"] = {
        "resourceType": "EKSCluster",
        "eksClusterDetails": {
            "name": "payments-prod",
            "arn": f"arn:aws:eks:{workload.region}:{workload.account_id}:cluster/payments-prod",
        },
    }
    client = dev_env.client
    async with running_worker(client) as settings:
        await _outcome(f"triage_{outcome}", await _submitted(client, settings, event), outcome)


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
async def record_sequence(dev_env, workload, outcome):
    """An attack sequence naming the instance and the user's key: one incident each (not recorded), rolled up."""
    moto_fidelity_findings.apply()
    detector = boto3.client("guardduty", region_name=workload.region).create_detector(Enable=True)["DetectorId"]
    event = workload_attack_sequence(workload)
    detail = event["detail"]
    detail["service"]["detectorId"] = detector
    detail["arn"] = (
        f"arn:aws:guardduty:{workload.region}:{workload.account_id}:detector/{detector}/finding/{detail['id']}"
    )
    client = dev_env.client
    async with running_worker(client) as settings:
        parent = await _submitted(client, settings, event)
        state = await wait_for(parent, lambda s: s.status == Status.AWAITING_DECISION and len(s.children) == 2)
        children = [c.workflow_id for c in state.children]
        for child in children:  # each contained before the parent's report reads them
            await wait_for(client.get_workflow_handle(child), lambda s: s.status == Status.AWAITING_DECISION)
        await _outcome(f"sequence_{outcome}", parent, outcome)
        await reject_open_incidents(client, children)


async def _outcome(name: str, handle: WorkflowHandle, outcome: str) -> None:
    if outcome == "approved":
        await _decided(name, handle, "approve", APPROVE, Status.RESOLVED)
    else:
        await _decided(name, handle, "reject", REJECT, Status.ROLLED_BACK)


# --- readiness: a ready account, then one thing broken ---


async def record_readiness(dev_env, ready, workload):
    client = dev_env.client
    async with running_worker(client) as settings, scheduled(client, settings) as runs:
        green, report = await runs.next()
        assert report.ready, [(r.check, r.evidence) for r in report.results if r.status != "pass"]
        await _save("readiness_ready", green)
        _guardduty_disabled(workload, ready)
        broken, report = await runs.next()
        assert not report.ready
        await _save("readiness_one_check_failing", broken)  # compared with the run before; one notification


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HISTORIES, help="where the JSON files go (default: %(default)s)")
    parser.add_argument("-k", dest="keyword", help="only the recorders matching this pytest -k expression")
    args = parser.parse_args(argv)
    checkout = Path(__file__).resolve().parents[2]
    if Path(sys.modules[IncidentWorkflow.__module__].__file__).resolve() != checkout / "workflows" / "incident.py":
        parser.error(f"run it from {checkout}, as a module: its workflows, not another checkout's")
    with tempfile.TemporaryDirectory() as into:
        os.environ[INTO] = into
        selection = ["-k", args.keyword] if args.keyword else []
        code = pytest.main(
            [__file__, "-o", "python_functions=record_*", "-p", "no:cacheprovider", "-q", "-p", "no:randomly"]
            + selection
        )
        recorded = sorted(Path(into).glob("*.json"))
        args.out.mkdir(parents=True, exist_ok=True)
        if not args.keyword and code == 0:  # a whole recording replaces the folder's: none left from an older one
            for stale in set(args.out.glob("*.json")) - {args.out / p.name for p in recorded}:
                stale.unlink()
        for path in recorded:
            shutil.copyfile(path, args.out / path.name)
    total = sum((args.out / p.name).stat().st_size for p in recorded)
    print(f"{len(recorded)} histories ({total / 1e6:.2f} MB) written to {args.out}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
