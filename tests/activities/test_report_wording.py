"""The wording the Markdown and the HTML report share: durations a person reads at a glance, times, what an
action came to, and a label for every milestone the record has."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activities.report_wording import (
    DEADLINE_ESCALATION,
    MILESTONE_LABELS,
    decision_text,
    drift_text,
    duration_text,
    escalation_texts,
    outcome_text,
    time_text,
)
from irflow.models.incident import ActionRecord, ActionStatus, Decision, DecisionKind, Eradication, Phase
from tests.activities.report_support import _state, drift


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.25, "0.25s"),
        (42.5, "42.5s"),
        (390.0, "6m 30s"),
        (14400.0, "4h 0m"),
        (183600.0, "2d 3h"),
        (-390.0, "-6m 30s"),
    ],
)
def test_a_duration_reads_in_the_largest_units_that_matter(seconds, text):
    assert duration_text(seconds) == text


def test_a_missing_time_is_a_dash_and_a_time_is_iso_8601():
    assert time_text(None) == "—"
    assert time_text(datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) == "2026-03-01T09:00:00+00:00"


def test_an_action_comes_to_its_error_or_to_its_result_as_stable_json():
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    done = ActionRecord(
        name="a",
        phase=Phase.CONTAINMENT,
        status=ActionStatus.DONE,
        started_at=at,
        finished_at=at,
        result={"b": 2, "a": at},
    )
    assert outcome_text(done) == '{"a": "2026-03-01 09:00:00+00:00", "b": 2}'
    failed = done.model_copy(update={"status": ActionStatus.FAILED, "error": "AccessDenied"})
    assert outcome_text(failed) == "AccessDenied"


def test_every_milestone_of_the_record_has_a_label():
    assert set(MILESTONE_LABELS) == set(_state().milestones())


def test_a_snapshot_reads_with_its_digest_and_its_forensic_copy():
    from activities.report_wording import copy_text, digest_text
    from irflow.models.evidence import SnapshotEvidence

    bare = SnapshotEvidence(snapshot_id="snap-1", volume_id="vol-1", state="completed")
    assert digest_text(bare) == copy_text(bare) == "—"
    secured = bare.model_copy(
        update={
            "sha256": "ab" * 32,
            "block_count": 3,
            "block_size": 524288,
            "copy_snapshot_id": "snap-2",
            "copy_account_id": "222233334444",
            "copy_region": "us-east-1",
            "copy_kms_key_id": "arn:aws:kms:us-east-1:222233334444:key/k",
            "copy_state": "completed",
            "copy_digest_matches": True,
            "original_deleted": True,
        }
    )
    assert digest_text(secured) == f"{'ab' * 32} (3 blocks of 524288 bytes)"
    assert copy_text(secured) == (
        "snap-2 in 222233334444 us-east-1, KMS key arn:aws:kms:us-east-1:222233334444:key/k, completed, "
        "digest matches, original deleted"
    )


def test_an_escalation_says_whether_containment_was_undone_or_a_deadline_passed():
    deadline, drifted = datetime(2026, 3, 1, 13, 0, tzinfo=UTC), datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    undone = drift(drifted, "arn:x:bob")
    texts = dict(escalation_texts(_state(escalations=[drifted, deadline], drifts=[undone])))
    assert texts[deadline] == DEADLINE_ESCALATION
    assert "isolate_network (eni-1 carries sg-web)" in texts[drifted] and "arn:x:bob" in texts[drifted]
    assert "re-applied, holds again" in texts[drifted]
    unrepaired = drift(drifted, changed_by=[], changed_by_unknown="no LookupEvents", holds_after=False)
    assert "unknown (no LookupEvents)" in drift_text(unrepaired) and "NOT repaired" in drift_text(unrepaired)


def test_drifts_found_by_one_check_each_explain_their_own_escalation():
    """One check (one moment) may find several steps undone; a step still undone is not escalated again."""
    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    key = drift(at, step="deactivate_access_key", found="key Active", trigger="finding")
    policy = key.model_copy(update={"step": "revoke_user_sessions", "found": "no revocation policy"})
    again = key.model_copy(update={"step": "isolate_network", "escalated": False})
    texts = [text for _, text in escalation_texts(_state(escalations=[at, at], drifts=[key, again, policy]))]
    assert ["deactivate_access_key" in texts[0], "revoke_user_sessions" in texts[1]] == [True, True]
    assert not any("isolate_network" in text for text in texts)


def test_a_decision_reads_the_same_wherever_it_is_written():
    at = datetime(2026, 3, 1, 9, 20, 30, tzinfo=UTC)
    approval = Decision(kind=DecisionKind.APPROVE, by="arn:aws:sts::1:assumed-role/ir/alice", at=at, via="update",
                        stage="eradication", eradication=Eradication.STOP, comment="confirmed C2")  # fmt: skip
    assert decision_text(approval) == (
        "approve (eradication) by arn:aws:sts::1:assumed-role/ir/alice via update at 2026-03-01T09:20:30+00:00, "
        "accepted, eradication: stop: confirmed C2"
    )
    refused = Decision(kind=DecisionKind.REJECT, by="bob", at=at, accepted=False, refusal="not an approver")
    assert decision_text(refused) == "reject by bob via signal at 2026-03-01T09:20:30+00:00, refused: not an approver"
    assert decision_text(refused.model_copy(update={"refusal": None})).endswith("refused: —")
    # A line that starts with the time leaves it out; a roll-up of settling decisions leaves out how they came.
    assert decision_text(approval, when=False) == (
        "approve (eradication) by arn:aws:sts::1:assumed-role/ir/alice via update, accepted, eradication: stop: "
        "confirmed C2"
    )
    assert decision_text(approval, when=False, how=False) == (
        "approve (eradication) by arn:aws:sts::1:assumed-role/ir/alice, eradication: stop: confirmed C2"
    )
    long = approval.model_copy(update={"comment": "x" * 201})
    assert decision_text(long, how=False, limit=200).endswith(": " + "x" * 200 + "…")
    assert decision_text(approval, limit=12).endswith(": confirmed C2"), "a comment within the limit is whole"
