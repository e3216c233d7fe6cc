"""The engine: each event goes only to the rules whose declarations admit it; a rule that raises costs only
its own alerts and is counted and logged; alerts come in a stable order."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from irflow.detection import engine as engine_module
from irflow.detection.engine import Engine
from irflow.detection.rules import Alert, Event, Rule
from irflow.detection.sigma import load_sigma_rules
from irflow.models.finding import Severity
from tests.support import CORPORA


def always(event: Event) -> bool:
    return True


def boom(event: Event) -> bool:
    raise RuntimeError(f"boom on {event.get('eventID')}")


@dataclass(eq=False)
class Recording(Rule):
    """A stateless rule that records every event the engine tests it on."""

    verdict: Callable[[Event], bool] = always
    seen: list[Event] = field(default_factory=list)

    def matches(self, event: Event) -> bool:
        self.seen.append(event)
        return self.verdict(event)


@dataclass(eq=False)
class RecordingWindow(Rule):
    """A stateful rule (fed through `observe`): alerts on every `every`-th event it sees, carrying them all."""

    every: int = 1
    verdict: Callable[[Event], bool] = always
    seen: list[Event] = field(default_factory=list)

    def indexed_test(self) -> None:
        return None

    def observe(self, event: Event) -> Alert | None:
        self.seen.append(event)
        if self.verdict(event) and len(self.seen) % self.every == 0:
            return self.alert(tuple(self.seen[-self.every :]))
        return None


def make(rule_id: str, kind: type[Rule] = Recording, **declarations: Any) -> Any:
    for name in ("event_sources", "event_names", "identity_types"):
        if name in declarations:
            declarations[name] = frozenset(declarations[name])
    return kind(
        rule_id=rule_id, title=rule_id, severity=Severity.MEDIUM, finding_type="Discovery:IAMUser/Test", **declarations
    )


def cloudtrail(event_id: str, source: str, name: str, identity_type: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"eventID": event_id, "eventSource": source, "eventName": name}
    if identity_type:
        event["userIdentity"] = {"type": identity_type, "arn": "arn:aws:iam::111111111111:user/alice"}
    return event


STREAM = [
    cloudtrail("e1", "iam.amazonaws.com", "CreateAccessKey", "IAMUser"),
    cloudtrail("e2", "iam.amazonaws.com", "ListUsers", "IAMUser"),
    cloudtrail("e3", "s3.amazonaws.com", "ListBuckets", "Root"),
    cloudtrail("e4", "s3.amazonaws.com", "PutBucketPolicy", "Root"),
    cloudtrail("e5", "ec2.amazonaws.com", "DescribeInstances", "AssumedRole"),
    cloudtrail("e6", "iam.amazonaws.com", "CreateAccessKey"),  # no userIdentity
    {"eventID": "e7"},  # neither source nor name
    {"eventID": "e8", "eventSource": "s3.amazonaws.com", "eventName": 8, "userIdentity": "Root"},  # malformed
]


def ids(events: list[Event]) -> list[str]:
    return [e["eventID"] for e in events]


# ---------------------------------------------------------------------------------------- the index


@pytest.mark.parametrize("cache_limit", [engine_module.CACHE_LIMIT, 0], ids=["cached", "beyond the cache"])
def test_each_rule_is_called_only_for_the_events_its_declarations_admit(monkeypatch, cache_limit) -> None:
    monkeypatch.setattr(engine_module, "CACHE_LIMIT", cache_limit)
    rules = [
        make("exact", event_sources={"iam.amazonaws.com"}, event_names={"CreateAccessKey"}),
        make("source", event_sources={"s3.amazonaws.com"}),
        make("names", event_names={"CreateAccessKey", "PutBucketPolicy"}),
        make("prefixes", name_prefixes=("List", "Describe")),
        make("root", identity_types={"Root"}),
        make("s3-root", event_sources={"s3.amazonaws.com"}, event_names={"PutBucketPolicy"}, identity_types={"Root"}),
        make("window", RecordingWindow, event_sources={"iam.amazonaws.com"}, name_prefixes=("List",)),
    ]
    engine = Engine(rules)
    for _ in range(2):  # the second pass is answered from the engine's cache (when it has one)
        for event in STREAM:
            engine.evaluate(event)
    seen = {rule.rule_id: ids(rule.seen) for rule in rules}
    assert seen == {
        "exact": ["e1", "e6"] * 2,
        "source": ["e3", "e4", "e8"] * 2,
        "names": ["e1", "e4", "e6"] * 2,
        "prefixes": ["e2", "e3", "e5"] * 2,
        "root": ["e3", "e4"] * 2,
        "s3-root": ["e4"] * 2,
        "window": ["e2"] * 2,
    }
    for event in STREAM:  # what `candidates` tells an operator is what the engine did
        assert {r.rule_id for r in engine.candidates(event)} == {r.rule_id for r in rules if event in r.seen}


def test_a_rule_declaring_nothing_sees_every_event() -> None:
    anything = make("anything")
    stateful = make("anything-windowed", RecordingWindow)
    exact = make("exact", event_sources={"iam.amazonaws.com"}, event_names={"CreateAccessKey"})
    engine = Engine([exact, anything, stateful])
    alerts = list(engine.run(STREAM))
    assert ids(anything.seen) == ids(STREAM)
    assert ids(stateful.seen) == ids(STREAM)
    assert Counter(a.rule_id for a in alerts) == {"anything": 8, "anything-windowed": 8, "exact": 2}


def test_a_stateful_rule_is_fed_its_events_in_stream_order_and_its_alert_carries_them() -> None:
    window = make("pairs", RecordingWindow, every=2, event_sources={"iam.amazonaws.com"})
    alerts = list(Engine([window]).run(STREAM))
    assert ids(window.seen) == ["e1", "e2", "e6"]
    assert [ids(list(a.events)) for a in alerts] == [["e1", "e2"]]


def test_an_event_with_malformed_fields_goes_to_the_rules_that_declare_nothing_without_raising() -> None:
    """CloudTrail input is untrusted JSON; a record whose eventName is an array, or whose userIdentity.type
    is an object, must not stop the engine (the listener evaluates every record of a log file in turn)."""
    anything = make("anything")
    engine = Engine([make("names", event_names={"CreateAccessKey"}), make("root", identity_types={"Root"}), anything])
    odd = [
        {"eventID": "list-name", "eventSource": "iam.amazonaws.com", "eventName": ["CreateAccessKey"]},
        {"eventID": "list-source", "eventSource": ["iam.amazonaws.com"], "eventName": "CreateAccessKey"},
        {"eventID": "object-type", "eventSource": "iam.amazonaws.com", "eventName": "X", "userIdentity": {"type": {}}},
    ]
    alerts = [a.rule_id for event in odd for a in engine.evaluate(event)]
    assert ids(anything.seen) == ["list-name", "list-source", "object-type"]
    assert "anything" in alerts and "root" not in alerts


# ---------------------------------------------------------------------------------------- rules that raise


@pytest.mark.parametrize("kind", [Recording, RecordingWindow], ids=["stateless", "stateful"])
def test_a_rule_that_raises_costs_only_its_own_alerts_and_is_counted_and_logged(kind, caplog) -> None:
    broken = make("team.broken", kind, verdict=boom, event_names={"CreateAccessKey"})
    healthy = [make("healthy.exact", event_sources={"iam.amazonaws.com"}, event_names={"CreateAccessKey"})]
    healthy += [make("healthy.anything"), make("healthy.windowed", RecordingWindow, event_names={"CreateAccessKey"})]
    engine = Engine([broken, *healthy])
    events = [cloudtrail(f"k{n}", "iam.amazonaws.com", "CreateAccessKey", "IAMUser") for n in range(1, 10)]
    events.append(cloudtrail("other", "iam.amazonaws.com", "ListUsers", "IAMUser"))  # broken is not asked
    with caplog.at_level(logging.ERROR, logger=engine_module.__name__):
        alerts = [engine.evaluate(event) for event in events]
    assert [sorted(a.rule_id for a in found) for found in alerts] == [
        ["healthy.anything", "healthy.exact", "healthy.windowed"]
    ] * 9 + [["healthy.anything"]]
    assert engine.errors == {"team.broken": 9}
    logged = [r.getMessage() for r in caplog.records if r.name == engine_module.__name__]
    assert logged == [  # the 1st, 2nd, 4th and 8th time: visible without flooding the log
        f"detection rule team.broken raised RuntimeError on event k{n} ({n} time(s) so far): boom on k{n}"
        for n in (1, 2, 4, 8)
    ]
    assert all(r.levelno == logging.ERROR for r in caplog.records if r.name == engine_module.__name__)


def test_errors_are_counted_per_rule() -> None:
    engine = Engine(
        [
            make("fails-on-keys", verdict=boom, event_names={"CreateAccessKey"}),
            make("fails-on-everything", RecordingWindow, verdict=boom),
            make("fine"),
        ]
    )
    alerts = list(engine.run(STREAM))
    assert engine.errors == {"fails-on-keys": 2, "fails-on-everything": 8}
    assert [a.rule_id for a in alerts] == ["fine"] * 8


# -------------------------------------------------------------------------------------------- many alerts


def test_several_rules_matching_one_event_give_one_alert_each_in_a_stable_order(monkeypatch) -> None:
    def rules() -> list[Rule]:
        return [
            make("a.exact", event_sources={"iam.amazonaws.com"}, event_names={"CreateAccessKey"}),
            make("b.names", event_names={"CreateAccessKey"}),
            make("c.exact", event_sources={"iam.amazonaws.com"}, event_names={"CreateAccessKey", "DeleteAccessKey"}),
            make("d.anything"),
            make("e.prefix", name_prefixes=("Create",)),
            make("f.no-match", verdict=lambda event: False),
        ]

    event = cloudtrail("e1", "iam.amazonaws.com", "CreateAccessKey", "IAMUser")
    engine = Engine(rules())
    first = [a.rule_id for a in engine.evaluate(event)]
    assert sorted(first) == ["a.exact", "b.names", "c.exact", "d.anything", "e.prefix"]
    assert [a.rule_id for a in engine.evaluate(dict(event))] == first  # again, from the cache
    assert [a.rule_id for a in Engine(rules()).evaluate(event)] == first  # another engine, same rules
    monkeypatch.setattr(engine_module, "CACHE_LIMIT", 0)
    assert [a.rule_id for a in Engine(rules()).evaluate(event)] == first  # without the cache
    # rules indexed alike keep the order they were given in, and the order is the one `candidates` reports
    assert first.index("a.exact") < first.index("c.exact")
    assert first.index("b.names") < first.index("d.anything") < first.index("e.prefix")
    assert first == [r.rule_id for r in engine.candidates(event) if r.rule_id != "f.no-match"]
    assert all(a.events == (event,) for a in engine.evaluate(event))


def test_run_gives_the_alerts_of_each_event_in_turn() -> None:
    def rules() -> list[Rule]:
        return [make("keys", event_names={"CreateAccessKey"}), make("root", identity_types={"Root"})]

    expected = [(a.rule_id, a.events[0]["eventID"]) for e in STREAM for a in Engine(rules()).evaluate(e)]
    assert [(a.rule_id, a.events[0]["eventID"]) for a in Engine(rules()).run(STREAM)] == expected
    assert expected == [("keys", "e1"), ("root", "e3"), ("root", "e4"), ("keys", "e6")]


# ---------------------------------------------------------------------- the index, on the Sigma corpus


@pytest.fixture(scope="module")
def corpus() -> tuple[list, list]:
    return load_sigma_rules(CORPORA / "sigma" / "rules")


def test_engine_only_tests_candidate_rules(corpus):
    rules, _ = corpus
    calls: Counter[str] = Counter()
    originals = {rule.rule_id: rule.predicate for rule in rules}
    for rule in rules:

        def counting(event, inner=rule.predicate, rule_id=rule.rule_id):
            calls[rule_id] += 1
            return inner(event)

        rule.predicate = counting
    try:
        engine = Engine(rules)
        unindexed = {r.rule_id for r in rules if not (r.event_sources or r.event_names or r.identity_types)}
        event = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging", "userIdentity": {}}
        alerts = engine.evaluate(event)
        trail = {r.rule_id for r in rules if "StopLogging" in r.event_names}
        assert set(calls) == unindexed | trail
        assert len(calls) < len(rules) // 4
        assert any(a.rule_id in trail for a in alerts)
        calls.clear()
        engine.evaluate({"eventSource": "s3.amazonaws.com", "eventName": "GetObject"})
        assert set(calls) == unindexed
        assert len(unindexed) <= 2  # IMDS credentials outside AWS (a regex on the ARN) and TruffleHog (userAgent)
        calls.clear()
        root = {r.rule_id for r in rules if r.identity_types == {"Root"}}
        assert root  # "AWS Root Credentials" is indexed by userIdentity.type
        alerts = engine.evaluate(
            {"eventSource": "s3.amazonaws.com", "eventName": "PutBucketPolicy", "userIdentity": {"type": "Root"}}
        )
        assert set(calls) == unindexed | root
        assert {a.rule_id for a in alerts} >= root
    finally:
        for rule in rules:
            rule.predicate = originals[rule.rule_id]
