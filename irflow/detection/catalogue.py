"""Every rule irflow evaluates: its own Python and windowed rules plus Sigma rules from directories."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from irflow.detection.engine import Engine
from irflow.detection.python_rules import load_rule_files, python_rules
from irflow.detection.rules import Rule, Unsupported
from irflow.detection.sigma import load_sigma_rules


@dataclass
class Catalogue:
    rules: list[Rule] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)
    disabled: list[Rule] = field(default_factory=list)  # loaded, but switched off by configuration

    def engine(self) -> Engine:
        return Engine(self.rules)


def is_disabled(rule_id: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(rule_id, pattern) for pattern in patterns)


def load_catalogue(
    sigma_dirs: list[Path] | tuple[Path, ...] = (),
    include_python: bool = True,
    disabled: Iterable[str] = (),
    python_dirs: Iterable[Path | str] = (),
) -> Catalogue:
    """Fresh rule instances (windowed rules hold state: each engine gets its own): irflow's own rules, the
    team's Python rule files from `python_dirs`, Sigma rules from `sigma_dirs`. Rules whose id matches one of
    `disabled` (ids or globs) are set aside in `Catalogue.disabled` and never evaluated."""
    loaded: list[Rule] = python_rules() if include_python else []
    own, unsupported = load_rule_files(python_dirs)
    loaded += own
    for directory in sigma_dirs:
        rules, rejected = load_sigma_rules(Path(directory))
        loaded += rules
        unsupported += rejected
    patterns = tuple(disabled)
    catalogue = Catalogue(unsupported=unsupported)
    for rule in loaded:
        (catalogue.disabled if is_disabled(rule.rule_id, patterns) else catalogue.rules).append(rule)
    return catalogue
