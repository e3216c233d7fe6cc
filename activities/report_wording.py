"""How every rendering of the post-incident report words the same values: milestone names, times,
durations and what an action came to. One wording, so the Markdown and the HTML never disagree.
"""

from __future__ import annotations

import json
from datetime import datetime

from irflow.models.evidence import MemoryCapture, MemoryCaptureResult, SnapshotEvidence
from irflow.models.incident import ActionRecord, Decision, DriftRecord, IncidentState

MILESTONE_LABELS = {
    "first_observed": "activity first observed (finding's first sighting)",
    "detected": "detected by irflow (finding received)",
    "first_decision": "first decision",
    "contained": "contained",
    "decided": "final decision",
    "recovered": "eradicated / recovered",
    "closed": "closed",
}


def time_text(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "—"


def duration_text(seconds: float | None) -> str:
    """A human reading of a number of seconds: 42.5s, 6m 30s, 4h 0m, 2d 3h."""
    if seconds is None:
        return "—"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:g}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    return f"{sign}{minutes}m {secs}s"


def digest_text(snapshot: SnapshotEvidence) -> str:
    """The snapshot's SHA-256 with the number of written blocks it covers, or a dash."""
    if not snapshot.sha256:
        return "—"
    return f"{snapshot.sha256} ({snapshot.block_count} blocks of {snapshot.block_size} bytes)"


def copy_text(snapshot: SnapshotEvidence) -> str:
    """The snapshot's copy in the forensic account: where, under which key, whether its digest matches, and
    whether the original was kept; a dash when there is none."""
    if not snapshot.copy_snapshot_id:
        return "—"
    verdict = {True: "digest matches", False: "DIGEST DIFFERS", None: "not digested"}[snapshot.copy_digest_matches]
    original = "original deleted" if snapshot.original_deleted else "original kept"
    return (
        f"{snapshot.copy_snapshot_id} in {snapshot.copy_account_id} {snapshot.copy_region or ''}, "
        f"KMS key {snapshot.copy_kms_key_id or '—'}, {snapshot.copy_state or '—'}, {verdict}, {original}"
    )


def outcome_text(action: ActionRecord) -> str:
    """The error if the action failed, else its result as compact, stable JSON."""
    return action.error or json.dumps(action.result, sort_keys=True, default=str)


def decision_text(d: Decision, *, when: bool = True, how: bool = True, limit: int | None = None) -> str:
    """One decision in words, the same in every rendering:
    'approve (eradication) by alice via update at 2026-03-01T09:20:30+00:00, accepted, eradication: stop: confirmed'.
    `when=False` leaves out the time (for a line that starts with it); `how=False` leaves out the channel and
    the verdict (for a list of settling decisions only); `limit` cuts the comment to that many characters
    (with an ellipsis). No comment, no colon after the rest."""
    stage = f" ({d.stage})" if d.stage else ""
    via = f" via {d.via}" if how else ""
    at = f" at {time_text(d.at)}" if when else ""
    verdict = (", accepted" if d.accepted else f", refused: {d.refusal or '—'}") if how else ""
    choice = f", eradication: {d.eradication}" if d.eradication else ""
    comment = d.comment if limit is None or len(d.comment) <= limit else d.comment[:limit] + "…"
    return f"{d.kind}{stage} by {d.by}{via}{at}{verdict}{choice}" + (f": {comment}" if comment else "")


DEADLINE_ESCALATION = "no decision before the deadline: escalated, containment kept"


def drift_text(d: DriftRecord) -> str:
    """A drift in one line: what was undone, who did it (as far as anyone could tell), and what irflow did."""
    who = ", ".join(dict.fromkeys(c.principal for c in d.changed_by)) or f"unknown ({d.changed_by_unknown or '—'})"
    outcome = "re-applied, holds again" if d.holds_after else f"NOT repaired: {d.reapply_error or d.found_after}"
    return f"containment undone, found by the {d.trigger} check: {d.step} ({d.found}); changed by {who}; {outcome}"


def escalation_texts(state: IncidentState) -> list[tuple[datetime, str]]:
    """Each escalation with why: containment found undone (the escalated drifts of that moment, in order: one
    check may find several at once), or a decision's deadline."""
    drifts: dict[datetime, list[DriftRecord]] = {}
    for drift in state.drifts:
        if drift.escalated:
            drifts.setdefault(drift.at, []).append(drift)
    return [(at, drift_text(drifts[at].pop(0)) if drifts.get(at) else DEADLINE_ESCALATION) for at in state.escalations]


MEMORY_MODES = {
    MemoryCapture.THROUGH_ENDPOINTS: "after isolation, through the forensic egress (VPC endpoints) with the "
    "quarantine profile",
    MemoryCapture.BEFORE_ISOLATION: "before isolation, with a deadline",
    MemoryCapture.SKIP: "not attempted (no forensic egress)",
    MemoryCapture.OFF: "not attempted (turned off)",
}


def memory_facts(m: MemoryCaptureResult) -> list[tuple[str, str | None]]:
    """What was captured, how, and its digest, or exactly why not: (label, text) rows, None where nothing applies."""
    image = m.image
    command = f"{m.command_id} ended {m.status}" + (f" ({m.detail})" if m.detail else "") if m.command_id else None
    return [
        ("captured", "yes" if image else "no"),
        ("how", f"{MEMORY_MODES.get(m.mode, m.mode)}; tool {m.tool}, SSM document {m.document or '—'}"),
        ("SSM command", command),
        ("image", f"s3://{image.bucket}/{image.key} version {image.version_id}, {image.size} bytes" if image else None),
        ("SHA-256", f"{image.sha256} (computed by the worker from the stored object)" if image else None),
        ("instance's SHA-256", m.agent_sha256),
        ("isolated at the deadline", "yes: isolation did not wait for the capture" if m.isolated_at_deadline else None),
        ("why not" if not image else "note", m.reason or None),
    ]
