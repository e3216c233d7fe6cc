"""Every rule irflow evaluates: its own Python and windowed rules plus Sigma rules from directories."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detection.engine import Engine
from detection.python_rules import python_rules
from detection.rules import Rule, Unsupported
from detection.sigma import load_sigma_rules


@dataclass
class Catalogue:
    rules: list[Rule] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    def engine(self) -> Engine:
        return Engine(self.rules)


def load_catalogue(sigma_dirs: list[Path] | tuple[Path, ...] = (), include_python: bool = True) -> Catalogue:
    """Fresh rule instances (windowed rules hold state: each engine gets its own)."""
    catalogue = Catalogue(rules=python_rules() if include_python else [])
    for directory in sigma_dirs:
        loaded, unsupported = load_sigma_rules(Path(directory))
        catalogue.rules += loaded
        catalogue.unsupported += unsupported
    return catalogue
