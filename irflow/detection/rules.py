"""What every detection rule is, and what it raises.

A rule says which events it can possibly match — `event_sources`, `event_names`, `name_prefixes` (eventName
starts with one of them) and `identity_types` (userIdentity.type); empty means any — so the engine only tests
an event against rules that could match it. Stateless rules decide on one event;
windowed rules keep bounded per-principal state and decide on a sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from irflow.models.finding import Severity

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
    name_prefixes: tuple[str, ...] = ()  # e.g. ("List", "Describe"); empty: any name
    identity_types: frozenset[str] = frozenset()  # userIdentity.type, e.g. {"Root"}; empty: any caller
    description: str = ""
    kind: str = "python"  # "sigma", "python" or "windowed"
    references: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)

    def admits(self, source: Any, name: Any, identity_type: Any) -> bool:
        """Whether an event with this eventSource, eventName and userIdentity.type can match at all."""
        # A value that is not a string (a broken or forged record) matches no declaration, and never raises.
        if self.event_sources and not (source.__class__ is str and source in self.event_sources):
            return False
        if self.event_names and not (name.__class__ is str and name in self.event_names):
            return False
        if self.name_prefixes and not (name.__class__ is str and name.startswith(self.name_prefixes)):
            return False
        return not self.identity_types or (identity_type.__class__ is str and identity_type in self.identity_types)

    def admits_event(self, event: Event) -> bool:
        identity = event.get("userIdentity")
        return self.admits(
            event.get("eventSource"),
            event.get("eventName"),
            identity.get("type") if isinstance(identity, Mapping) else None,
        )

    def matches(self, event: Event) -> bool:
        raise NotImplementedError

    def indexed_test(self) -> Callable[[Event], bool] | None:
        """The test the engine runs on an event `admits` let through (it need not re-check what the index
        did), or None for a stateful rule, which the engine feeds through `observe`."""
        return self.matches

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
