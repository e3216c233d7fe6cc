"""What the finding listener did, counted: printed as JSON on shutdown and readable while it runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ListenerStats:
    """What the listener did; printed on shutdown and readable while it runs."""

    received: int = 0
    findings: int = 0
    started: int = 0
    joined: int = 0
    suppressed: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    dead_letter_repeats: int = 0  # a message already dead-lettered, delivered again: deleted, not sent twice
    held: int = 0
    deleted: int = 0
    outages: int = 0
    errors: int = 0
    log_files: int = 0  # CloudTrail log files read from S3
    log_records: int = 0  # records in them, each evaluated by the detection rules
    tamper_joined: int = 0  # running incidents a tamper call reached (one call may reach several)
    tamper_unguarded: int = 0  # tamper calls on what no running incident guards: ordinary administration
    suppressed_by_reason: Counter = field(default_factory=Counter)
    rejected_by_code: Counter = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "findings": self.findings,
            "started": self.started,
            "joined": self.joined,
            "suppressed": self.suppressed,
            "rejected": self.rejected,
            "dead_lettered": self.dead_lettered,
            "dead_letter_repeats": self.dead_letter_repeats,
            "held": self.held,
            "deleted": self.deleted,
            "outages": self.outages,
            "errors": self.errors,
            "log_files": self.log_files,
            "log_records": self.log_records,
            "tamper_joined": self.tamper_joined,
            "tamper_unguarded": self.tamper_unguarded,
            "suppressed_by_reason": dict(self.suppressed_by_reason),
            "rejected_by_code": dict(self.rejected_by_code),
        }
