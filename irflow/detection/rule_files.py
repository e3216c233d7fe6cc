"""Python rule files: `*.py` files whose `@rule` functions are detection rules, loaded by `load_rule_files`.

irflow's own rules (the `builtin/` folder) and a team's (`IRFLOW_PYTHON_RULES_DIRS`) are files of the same
kind, loaded the same way. A rule's test events are inline (`tests=`) or in `<file>.events.json` beside it
(see `irflow.detection.rule_tests`). What a rule file imports is `irflow.detection.authoring`; docs/rules.md
walks through writing one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from irflow.detection.rule_tests import EVENTS_SUFFIX, RuleTest, events_file_of, read_events_file
from irflow.detection.rules import Event, Rule, Unsupported
from irflow.models.finding import Severity

Predicate = Callable[[Event], bool]


@dataclass
class PythonRule(Rule):
    """A rule declared with `@rule`: its function, and the events that test it (inline and from beside the file)."""

    predicate: Predicate | None = None
    tests: tuple[RuleTest, ...] = ()

    def matches(self, event: Event) -> bool:
        # Through the engine the index has narrowed the event already; a direct call checks it here.
        return self.admits_event(event) and bool(self.predicate(event))  # type: ignore[misc]

    def indexed_test(self) -> Predicate | None:
        return self.predicate


# Where `@rule` puts the rules it declares: the file `load_rule_files` is running, innermost last.
_collecting: list[dict[str, PythonRule]] = []


def rule(
    *,
    id: str,  # noqa: A002 - reads naturally in the decorator
    title: str,
    severity: Severity,
    finding_type: str,
    sources: Iterable[str] = (),
    names: Iterable[str] = (),
    name_prefixes: Iterable[str] = (),
    identity_types: Iterable[str] = (),
    tests: Iterable[RuleTest] = (),
    description: str = "",
    references: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> Callable[[Predicate], Predicate]:
    """Declare the decorated function a detection rule. The function gets one CloudTrail record and returns
    True to alert. The rule is attached to the function as `.rule`, and collected when `load_rule_files`
    runs the file."""

    def declare(func: Predicate) -> Predicate:
        declared = PythonRule(
            rule_id=id,
            title=title,
            severity=severity,
            finding_type=finding_type,
            event_sources=frozenset(sources),
            event_names=frozenset(names),
            name_prefixes=tuple(name_prefixes),
            identity_types=frozenset(identity_types),
            description=description or (func.__doc__ or "").strip() or title,
            kind="python",
            references=tuple(references),
            tags=tuple(tags),
            predicate=func,
            tests=tuple(tests),
        )
        if _collecting:
            collected = _collecting[-1]
            if id in collected:
                raise ValueError(f"duplicate rule id {id}")
            collected[id] = declared
        func.rule = declared  # type: ignore[attr-defined]
        return func

    return declare


def rule_file_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Each path that is a `.py` file, and every `*.py` under each folder (recursively, sorted)."""
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(p for p in given.rglob("*.py") if p.is_file())
        else:
            found.append(given)
    return found


def load_rule_files(paths: Iterable[Path | str]) -> tuple[list[PythonRule], list[Unsupported]]:
    """The rules declared by rule files (`.py` files, and every `*.py` under folders), each file executed afresh,
    with the test events of its `.events.json`. A file that fails to run, declares no rule or reuses an id
    already loaded is reported with the reason and contributes nothing; it never stops the others from
    loading. An events file that cannot be read, or names a rule its file does not declare, is reported too
    (its rule file still loads)."""
    paths = list(paths)
    loaded: dict[str, PythonRule] = {}
    rejected: list[Unsupported] = []
    for path in rule_file_paths(paths):
        if not path.exists():  # a mistyped folder in the settings: say so rather than load nothing quietly
            rejected.append(Unsupported(str(path), "no such file or folder"))
            continue
        try:
            collected = _run_rule_file(path)
        except Exception as exc:  # any error in a rule file is that file's problem, reported
            rejected.append(Unsupported(str(path), f"{type(exc).__name__}: {exc}"))
            continue
        taken = sorted(collected.keys() & loaded.keys())
        if taken:
            rejected.append(Unsupported(str(path), f"rule id(s) already defined elsewhere: {', '.join(taken)}"))
        elif not collected:
            rejected.append(Unsupported(str(path), "declares no rule (use @rule from irflow.detection.authoring)"))
        else:
            rejected += _attach_events_file(path, collected)
            loaded.update(collected)
    rejected += _events_files_without_rule_file(paths)
    return list(loaded.values()), rejected


def _run_rule_file(path: Path) -> dict[str, PythonRule]:
    name = "irflow_rule_file_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("not loadable as a Python module")
    module = importlib.util.module_from_spec(spec)
    collected: dict[str, PythonRule] = {}
    _collecting.append(collected)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    finally:
        _collecting.pop()
        sys.modules.pop(name, None)
    return collected


def _attach_events_file(rule_file: Path, rules: dict[str, PythonRule]) -> list[Unsupported]:
    events_file = events_file_of(rule_file)
    if not events_file.is_file():
        return []
    try:
        tests = read_events_file(events_file)
    except ValueError as exc:
        return [Unsupported(str(events_file), str(exc))]
    for rule_id, extra in tests.items():
        if rule_id in rules:
            rules[rule_id].tests += tuple(extra)
    unknown = sorted(tests.keys() - rules.keys())
    if not unknown:
        return []
    reason = f"tests for rule id(s) {rule_file.name} does not declare: {', '.join(unknown)}"
    return [Unsupported(str(events_file), reason)]


def _events_files_without_rule_file(paths: list[Path | str]) -> list[Unsupported]:
    """Events files whose rule file is missing: a rename that left its tests behind."""
    orphans = []
    for given in map(Path, paths):
        if not given.is_dir():
            continue
        for events_file in sorted(given.rglob("*" + EVENTS_SUFFIX)):
            rule_file = events_file.with_name(events_file.name.removesuffix(EVENTS_SUFFIX) + ".py")
            if not rule_file.is_file():
                orphans.append(Unsupported(str(events_file), f"no rule file {rule_file.name} beside it"))
    return orphans
