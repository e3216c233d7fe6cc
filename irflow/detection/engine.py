"""The engine: each event is tested only against the rules that can match it.

Rules declare what an event must be to possibly match (eventSource, eventName, an eventName prefix, the
caller's userIdentity.type). The engine works out, once per distinct (eventSource, eventName,
userIdentity.type) and then from a cache, which rules those are, and keeps for each the cheapest test that
is still exact once the index has spoken: a stateless rule's own predicate (Sigma's compiled matcher, a
Python rule's function), or a windowed rule's `observe`.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from irflow.detection.rules import Alert, Event, Rule

log = logging.getLogger(__name__)

Entry = tuple[tuple[tuple[Callable[[Event], Any], Rule], ...], tuple[Callable[[Event], Alert | None], ...]]

CACHE_LIMIT = 100_000  # distinct (source, name, identity type) keys; beyond it, entries are computed per event


class Engine:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        # Rules with an exact eventSource+eventName are found by key; the rest are filtered per new key.
        self._exact: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        self._rest: list[Rule] = []
        for rule in self.rules:
            if rule.event_sources and rule.event_names:
                for source in rule.event_sources:
                    for name in rule.event_names:
                        self._exact[(source, name)].append(rule)
            else:
                self._rest.append(rule)
        self._cache: dict[tuple[Any, Any, Any], Entry] = {}
        self.errors: Counter[str] = Counter()  # rule id → events it raised on (the rule is skipped for them)

    def _candidates(self, source: Any, name: Any, identity_type: Any) -> list[Rule]:
        exact = self._exact.get((source, name), []) if source.__class__ is str and name.__class__ is str else []
        return [r for r in exact + self._rest if r.admits(source, name, identity_type)]

    def _entry(self, key: tuple[Any, Any, Any]) -> Entry:
        stateless, stateful = [], []
        for rule in self._candidates(*key):
            test = rule.indexed_test()
            if test is None:
                stateful.append(rule.observe)
            else:
                stateless.append((test, rule))
        entry = (tuple(stateless), tuple(stateful))
        if len(self._cache) < CACHE_LIMIT:
            self._cache[key] = entry
        return entry

    @staticmethod
    def _key(event: Event) -> tuple[Any, Any, Any]:
        identity = event.get("userIdentity")
        source, name = event.get("eventSource"), event.get("eventName")
        kind = identity.get("type") if identity.__class__ is dict else None
        # CloudTrail writes strings here. Anything else (a broken or forged record) can only reach the rules that
        # declare nothing, and must not stop the other records of its file from being evaluated.
        return (
            source if source.__class__ is str else None,
            name if name.__class__ is str else None,
            kind if kind.__class__ is str else None,
        )

    def candidates(self, event: Event) -> tuple[Rule, ...]:
        """The rules this event is tested against: the stateless ones, then the stateful ones."""
        key = self._key(event)
        return tuple(self._candidates(*key))

    def evaluate(self, event: Event) -> list[Alert]:
        key = self._key(event)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._entry(key)
        stateless, stateful = entry
        alerts = []
        for test, rule in stateless:
            try:  # free in Python 3.11 until something raises
                if test(event):
                    alerts.append(rule.alert((event,)))
            except Exception as exc:  # one rule's bug must not cost the other rules this event
                self._failed(rule, event, exc)
        for observe in stateful:
            try:
                alert = observe(event)
            except Exception as exc:
                self._failed(getattr(observe, "__self__", None), event, exc)
                continue
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _failed(self, rule: Rule | None, event: Event, exc: Exception) -> None:
        rule_id = rule.rule_id if rule is not None else "?"
        self.errors[rule_id] += 1
        count = self.errors[rule_id]
        if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th…: visible without flooding the log
            log.error(
                "detection rule %s raised %s on event %s (%d time(s) so far): %s",
                rule_id,
                type(exc).__name__,
                event.get("eventID"),
                count,
                exc,
            )

    def run(self, events: Iterable[Event]) -> Iterator[Alert]:
        for event in events:
            yield from self.evaluate(event)
