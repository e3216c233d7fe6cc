"""Lambda function talking to a C&C server: throttled to zero, its role's live sessions revoked, its
configuration and code locked as evidence; approval detaches the triggers, rejection (or a failure at
any containment step) restores the function exactly."""

from __future__ import annotations

import base64
import hashlib
import json

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from activities.iam import revocation_policy_name
from irflow.devstack import moto_fidelity_lambda
from irflow.devstack.demo_lambda import (
    DemoLambda,
    deployment_package,
    observed_function,
    sample_lambda_finding,
    seed_lambda_function,
)
from irflow.intake.submit import submit
from irflow.models.finding import parse_guardduty
from irflow.models.incident import Phase, Status
from tests.support import member_session, read_evidence, running_worker, wait_for
from tests.workflows.faults import failing_after_acting, flaky_after_acting
from workflows.activity_options import activity_name
from workflows.incident import IncidentWorkflow
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS, LAMBDA_ERADICATION_STEPS

STEPS = [step.name for step in LAMBDA_CONTAINMENT_STEPS]
ERADICATION = [activity_name(a) for a in LAMBDA_ERADICATION_STEPS]
MEMBER = "210987654321"


@pytest.fixture
def demo(workload) -> DemoLambda:
    moto_fidelity_lambda.apply()
    return seed_lambda_function(workload.account_id, workload.region)


async def _open(client, settings, demo: DemoLambda, **finding):
    event = sample_lambda_finding(
        demo.function_name, demo.function_arn, demo.role_arn, demo.account_id, demo.region, **finding
    )
    submission = await submit(client, parse_guardduty(event), settings)
    assert submission.workflow_id.startswith(f"lambda-{demo.account_id}-")
    return submission, client.get_workflow_handle_for(IncidentWorkflow.run, submission.workflow_id)


async def test_the_function_is_throttled_its_sessions_revoked_and_evidence_locked_then_detached(dev_env, demo):
    client = dev_env.client
    async with running_worker(client) as settings:
        submission, handle = await _open(client, settings, demo)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        assert state.playbook == "lambda-function" and state.contained_at is not None
        seen = observed_function(demo)
        assert seen["reserved_concurrency"] == 0
        assert seen["tags"] == {
            "app": "shop",
            "team": "media",
            "irflow:incident-id": submission.incident_id,
            "irflow:status": "contained",
        }
        assert seen["role_policies"] == [revocation_policy_name(submission.incident_id)]
        assert seen["mappings"] == {demo.mapping_uuid: "Enabled"}, "triggers are detached only after approval"
        assert any("reserved concurrency set to 0 (it had 25)" in r for r in state.plan_reasons)

        evidence = {e.kind: e for e in state.evidence}
        configuration = evidence["lambda-function"]
        raw = read_evidence(configuration)
        function = json.loads(raw)["function"]
        assert function["Code"]["Location"] and function["Code"]["RepositoryType"] == "S3"
        assert function["Configuration"]["CodeSha256"] == demo.code_sha256
        package = evidence["lambda-code-package"]
        body = read_evidence(package)
        assert base64.b64encode(hashlib.sha256(body).digest()).decode() == demo.code_sha256
        assert body == deployment_package()
        assert json.loads(read_evidence(evidence["lambda-code"]))["package_key"] == package.key

        await handle.signal("approve", {"by": "alice", "comment": "C&C confirmed; keep it for forensics"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    seen = observed_function(demo)
    assert seen["mappings"] == {demo.mapping_uuid: "Disabled"}
    assert seen["policy_statements"] == sorted(demo.own_statement_ids)
    assert seen["reserved_concurrency"] == 0
    assert seen["code_sha256"] == demo.code_sha256, "never deleted, never changed"
    triggers = next(e for e in final.evidence if e.kind == "lambda-triggers")
    raw = read_evidence(triggers)
    saved = {s["Sid"] for s in json.loads(raw)["resource_policies"]["$function"]["Statement"]}
    assert saved == set(demo.outside_statement_ids + demo.own_statement_ids), "saved before they were removed"
    eradication = [a.name for a in final.actions if a.phase == Phase.ERADICATION and a.name != "publish_notification"]
    assert eradication == ERADICATION


async def test_rejection_restores_the_function_exactly(dev_env, demo):
    before = observed_function(demo)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(client, settings, demo)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        assert observed_function(demo)["reserved_concurrency"] == 0
        await handle.signal("reject", {"by": "bob", "reason": "the C&C address is our own telemetry endpoint"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert observed_function(demo) == before
    assert {c.name for c in final.compensations} == {step.undo_name for step in LAMBDA_CONTAINMENT_STEPS}


@pytest.mark.parametrize("failing_step", STEPS)
async def test_a_failure_at_any_step_restores_the_function_exactly(dev_env, demo, failing_step):
    before = observed_function(demo)
    client = dev_env.client
    async with running_worker(client, activities=failing_after_acting(failing_step)) as settings:
        _, handle = await _open(client, settings, demo)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await wait_for(handle, lambda s: s.status.is_final)
    assert state.status == Status.ROLLED_BACK
    assert observed_function(demo) == before


async def test_retried_steps_change_nothing_twice(dev_env, demo):
    client = dev_env.client
    flaky = flaky_after_acting(STEPS + ERADICATION)
    async with running_worker(client, activities=flaky) as settings:
        submission, handle = await _open(client, settings, demo)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=90)
        contained = [a for a in state.actions if a.phase == Phase.CONTAINMENT and a.name in STEPS]
        # Taken at once: recorded in the order they finished.
        assert sorted(a.name for a in contained) == sorted(STEPS), "each step recorded once, though each ran twice"
        assert [a.result["changed"] for a in contained] == [False] * len(STEPS), "the retry found it done"
        seen = observed_function(demo)
        assert seen["reserved_concurrency"] == 0
        assert seen["tags"]["irflow:incident-id"] == submission.incident_id
        assert seen["role_policies"] == [revocation_policy_name(submission.incident_id)]
        await handle.signal("approve", {"by": "alice"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    seen = observed_function(demo)
    assert seen["mappings"] == {demo.mapping_uuid: "Disabled"}
    assert seen["policy_statements"] == sorted(demo.own_statement_ids)
    # The second (retried) run of each eradication step found the work done.
    detached = [a for a in final.actions if a.phase == Phase.ERADICATION and a.name in ERADICATION[1:]]
    assert [a.result["changed"] for a in detached] == [False, False]
    assert len([e for e in final.evidence if e.kind == "lambda-triggers"]) == 1


async def test_a_function_tagged_for_manual_containment_waits_and_a_rejection_leaves_it_untouched(dev_env, demo):
    lam = boto3.client("lambda", region_name=demo.region)
    lam.tag_resource(Resource=demo.function_arn, Tags={"irflow:containment": "manual"})
    before = observed_function(demo)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(client, settings, demo)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.kind == "containment"
        assert observed_function(demo) == before
        await handle.signal("reject", {"by": "bob", "reason": "the owners handle it"})
        final = await handle.result()
    assert final.status == Status.ROLLED_BACK
    assert observed_function(demo) == before


# --- a function in a member account ---


async def test_a_member_accounts_function_is_contained_there_with_evidence_in_the_security_account(dev_env, workload):
    moto_fidelity_lambda.apply()
    session = member_session(MEMBER)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{workload.account_id}:role/irflow-worker"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    session.client("iam").create_role(RoleName="irflow-responder", AssumeRolePolicyDocument=json.dumps(trust))
    demo = seed_lambda_function(MEMBER, workload.region, session=session)
    before = observed_function(demo, session)
    client = dev_env.client
    async with running_worker(client) as settings:
        _, handle = await _open(client, settings, demo)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        assert observed_function(demo, session)["reserved_concurrency"] == 0
        configuration = next(e for e in state.evidence if e.kind == "lambda-function")
        assert configuration.bucket == workload.evidence_bucket
        read_evidence(configuration)
        await handle.signal("reject", {"by": "bob", "reason": "drill"})
        assert (await handle.result()).status == Status.ROLLED_BACK
    assert observed_function(demo, session) == before
