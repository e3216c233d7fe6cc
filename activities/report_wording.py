"""How every rendering of the post-incident report words the same values: milestone names, times,
durations and what an action came to. One wording, so the Markdown and the HTML never disagree.
"""

from __future__ import annotations

import json
from datetime import datetime

from irflow.models.incident import ActionRecord, SnapshotEvidence

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
