"""Every rule irflow evaluates: its own rule files (`builtin/`) and windowed rules, the team's Python rule
files, and Sigma rules from directories."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from irflow.detection.engine import Engine
from irflow.detection.rule_files import load_rule_files
from irflow.detection.rules import Rule, Unsupported
from irflow.detection.sigma import load_sigma_rules
from irflow.detection.windowed import windowed_rules

# irflow's own Python rules: one file per ATT&CK tactic, written and loaded exactly like a team's.
BUILTIN_RULES = Path(__file__).resolve().parent / "builtin"


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
    # One load for irflow's files and the team's, so a team file reusing an irflow rule id is reported.
    rule_files = [BUILTIN_RULES, *python_dirs] if include_python else list(python_dirs)
    python, unsupported = load_rule_files(rule_files)
    loaded: list[Rule] = [*python, *(windowed_rules() if include_python else ())]
    for directory in sigma_dirs:
        rules, rejected = load_sigma_rules(Path(directory))
        loaded += rules
        unsupported += rejected
    patterns = tuple(disabled)
    catalogue = Catalogue(unsupported=unsupported)
    for rule in loaded:
        (catalogue.disabled if is_disabled(rule.rule_id, patterns) else catalogue.rules).append(rule)
    return catalogue


def builtin_rules() -> list[Rule]:
    """irflow's own rules, fresh: those of the rule files in `builtin/` and the windowed rules."""
    return load_catalogue().rules
