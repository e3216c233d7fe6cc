"""Decisions carry proof of who decided: a signed sts:GetCallerIdentity request the worker sends to STS (here a
moto server that checks SigV4 signatures, as STS does). What a decider cannot fake: a name, a key they do not
hold, an old proof, someone else's incident, a proof used before, a second approval under another name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import botocore.auth
import pytest
from temporalio.client import WorkflowUpdateFailedError

from irflow.decision_proof import sign_decision
from irflow.devstack.approvers import approvers_setting
from irflow.models.incident import DecisionOutcome, Status
from irflow.models.proof import DecisionProof
from tests.support import observed_instance, open_incident, running_worker, wait_for
from tests.workflows.test_decisions import _settled_history


@pytest.fixture
def proofs(proof_endpoint):
    """The worker verifies with the identity server; alice and bob approve, dave adds notes, mallory is nobody."""
    url, people = proof_endpoint
    settings = {
        "decisions_require_proof": True,
        "proof_sts_endpoint_url": url,
        "approvers": approvers_setting([people["alice"], people["bob"], people["dave"]]),
    }
    return url, people, settings


def _payload(session, url: str, incident_id: str, kind: str, at: datetime | None = None, **fields) -> dict:
    """A decision with its proof, signed now or, given `at`, with botocore's SigV4 clock set to `at`."""
    words = fields.get("comment", fields.get("reason", fields.get("text", "")))
    with pytest.MonkeyPatch.context() as clock:
        if at is not None:
            clock.setattr(
                botocore.auth, "get_current_datetime", lambda *_, **__: at.astimezone(UTC).replace(tzinfo=None)
            )
        proof = sign_decision(
            session, url, incident_id=incident_id, verb=kind, comment=words, choice=fields.get("eradication")
        )
    return {**fields, "proof": proof.model_dump(mode="json")}


def _proof_id(payload: dict) -> str:
    return DecisionProof.model_validate(payload["proof"]).proof_id


async def _refused(handle, kind: str, payload: dict) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(kind, payload)
    return str(refused.value.cause)


async def test_only_a_proof_from_an_approvers_own_keys_decides_and_each_proof_decides_once(dev_env, workload, proofs):
    url, people, settings = proofs
    alice, dave, mallory = (people[name].session() for name in ("alice", "dave", "mallory"))
    client = dev_env.client
    async with running_worker(client, **settings) as configured:
        _, handle = await open_incident(client, configured, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        incident = state.incident_id
        history = await _settled_history(handle)

        # A name alone, an old proof, a proof for another incident: refused by the validator, no trace.
        assert "needs a proof" in await _refused(handle, "approve", {"by": "alice", "comment": "trust me"})
        old = datetime.now(UTC) - timedelta(seconds=301)
        assert "expired" in await _refused(handle, "approve", _payload(alice, url, incident, "approve", at=old))
        elsewhere = incident.replace(workload.instance_id, "i-0fedcba9876543210")
        assert "not this one" in await _refused(handle, "approve", _payload(alice, url, elsewhere, "approve"))
        assert list((await handle.fetch_history()).events) == history, "validator refusals leave no trace"

        # A key's id without its secret, and keys of someone who is no approver: STS (or the rule book) says no.
        forged = boto3.session.Session(aws_access_key_id=people["alice"].access_key_id, aws_secret_access_key="guessed")
        assert "SignatureDoesNotMatch" in await _refused(handle, "approve", _payload(forged, url, incident, "approve"))
        assert "not a configured approver" in await _refused(
            handle, "approve", _payload(mallory, url, incident, "approve", comment="let me")
        )
        await handle.signal("reject", _payload(forged, url, incident, "reject", reason="via the UI"))
        state = await wait_for(handle, lambda s: any(d.via == "signal" for d in s.decisions))
        assert [d.accepted for d in state.decisions] == [False, False, False]
        assert "SignatureDoesNotMatch" in state.decisions[-1].refusal
        assert state.status == Status.AWAITING_DECISION and state.pending_decision is not None
        assert observed_instance(workload)["state"] == "running"

        # Dave's own keys: a note by his verified ARN. The same proof again, for a note or a decision: refused.
        noted = _payload(dave, url, incident, "note", text="looked at the flow logs")
        outcome = await handle.execute_update("note", noted, result_type=DecisionOutcome)
        assert outcome.accepted
        assert "already used" in await _refused(handle, "note", noted)
        assert "already used" in await _refused(handle, "approve", {**noted, "comment": ""})

        approved = _payload(alice, url, incident, "approve", comment="confirmed", eradication="stop")
        outcome = await handle.execute_update("approve", {**approved, "by": "bob"}, result_type=DecisionOutcome)
        assert outcome.accepted
        final = await handle.result()
    assert final.status == Status.RESOLVED and observed_instance(workload)["state"] == "stopped"
    accepted = [(d.kind, d.by) for d in final.decisions if d.accepted]
    assert accepted == [("note", people["dave"].arn), ("approve", people["alice"].arn)], "the ARN, not the name"
    assert all(d.proof_id for d in final.decisions if d.accepted)
    assert [d.proof_id for d in final.decisions if d.accepted] == [_proof_id(noted), _proof_id(approved)], (
        "each decision records the id of the proof STS verified for it"
    )


async def test_one_principal_approving_twice_under_two_names_is_one_approver(dev_env, workload, proofs):
    url, people, settings = proofs
    alice, bob = people["alice"].session(), people["bob"].session()
    client = dev_env.client
    async with running_worker(client, **settings) as configured:
        _, handle = await open_incident(client, configured, workload, severity=9.0)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.pending_decision.approvals_required == 2
        incident = state.incident_id

        first = _payload(alice, url, incident, "approve", comment="confirmed", eradication="terminate")
        outcome = await handle.execute_update("approve", {**first, "by": "alice"}, result_type=DecisionOutcome)
        assert outcome.accepted and outcome.approvals == [people["alice"].arn]
        again = _payload(alice, url, incident, "approve", comment="agreed")
        assert "already approved" in await _refused(handle, "approve", {**again, "by": "bob"})
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert observed_instance(workload)["state"] == "running", "one principal, one approval: nothing destroyed"

        second = await handle.execute_update(
            "approve", _payload(bob, url, incident, "approve", comment="agreed"), result_type=DecisionOutcome
        )
        assert second.accepted and second.approvals == [people["alice"].arn, people["bob"].arn]
        final = await handle.result()
    assert final.status == Status.RESOLVED and final.eradication == "terminate"
    assert [d.by for d in final.decisions if d.accepted] == [people["alice"].arn, people["bob"].arn]
