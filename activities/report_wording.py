"""How every rendering of the post-incident report words the same values: milestone names, times,
durations and what an action came to. One wording, so the Markdown and the HTML never disagree.
"""

from __future__ import annotations

import json
from datetime import datetime

from irflow.models.incident import ActionRecord

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


def outcome_text(action: ActionRecord) -> str:
    """The error if the action failed, else its result as compact, stable JSON."""
    return action.error or json.dumps(action.result, sort_keys=True, default=str)
