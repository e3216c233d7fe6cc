"""The engine: rules indexed by (eventSource, eventName), each event tested only against rules that can
match it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from detection.rules import Alert, Event, Rule


class Engine:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._exact: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        self._by_source: dict[str, list[Rule]] = defaultdict(list)
        self._by_name: dict[str, list[Rule]] = defaultdict(list)
        self._any: list[Rule] = []
        for rule in self.rules:
            if rule.event_sources and rule.event_names:
                for source in rule.event_sources:
                    for name in rule.event_names:
                        self._exact[(source, name)].append(rule)
            elif rule.event_sources:
                for source in rule.event_sources:
                    self._by_source[source].append(rule)
            elif rule.event_names:
                for name in rule.event_names:
                    self._by_name[name].append(rule)
            else:
                self._any.append(rule)
        self._cache: dict[tuple[str, str], tuple[Rule, ...]] = {}

    def candidates(self, event: Event) -> tuple[Rule, ...]:
        key = (event.get("eventSource") or "", event.get("eventName") or "")
        found = self._cache.get(key)
        if found is None:
            found = tuple(
                self._exact.get(key, []) + self._by_source.get(key[0], []) + self._by_name.get(key[1], []) + self._any
            )
            if len(self._cache) < 100_000:
                self._cache[key] = found
        return found

    def evaluate(self, event: Event) -> list[Alert]:
        alerts = []
        for rule in self.candidates(event):
            alert = rule.observe(event)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def run(self, events: Iterable[Event]) -> Iterator[Alert]:
        for event in events:
            yield from self.evaluate(event)
