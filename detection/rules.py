"""What every detection rule is, and what it raises.

A rule says which events it can possibly match (`event_sources`, `event_names`; empty means any), so
the engine only tests an event against rules that could match it. Stateless rules decide on one event;
windowed rules keep bounded per-principal state and decide on a sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.finding import Severity

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Alert:
    """A rule matched: what, about whom, and the events that made it match."""

    rule_id: str
    title: str
    severity: Severity
    finding_type: str  # GuardDuty's naming: ThreatPurpose:ResourceTypeAffected/ThreatFamilyName
    events: tuple[Event, ...]
    description: str = ""
    references: tuple[str, ...] = ()


@dataclass
class Rule:
    """Base class. Subclasses implement `matches` (stateless) or override `observe` (windowed)."""

    rule_id: str
    title: str
    severity: Severity
    finding_type: str
    event_sources: frozenset[str] = frozenset()  # e.g. {"iam.amazonaws.com"}; empty: any source
    event_names: frozenset[str] = frozenset()  # e.g. {"CreateAccessKey"}; empty: any name
    description: str = ""
    kind: str = "python"  # "sigma", "python" or "windowed"
    references: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, event: Event) -> bool:
        raise NotImplementedError

    def observe(self, event: Event) -> Alert | None:
        """Called for every event the index sends here; stateless rules alert on a match."""
        if self.matches(event):
            return self.alert((event,))
        return None

    def alert(self, events: tuple[Event, ...]) -> Alert:
        return Alert(
            rule_id=self.rule_id,
            title=self.title,
            severity=self.severity,
            finding_type=self.finding_type,
            events=events,
            description=self.description,
            references=self.references,
        )


@dataclass(frozen=True)
class Unsupported:
    """A rule file irflow could not load, and why (reported, never silently dropped)."""

    source: str
    reason: str
