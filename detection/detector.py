"""The detector the finding listener runs on CloudTrail events: rules in, irflow findings out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from detection.catalogue import load_catalogue
from detection.findings import alert_to_finding
from models.finding import ParsedFinding


class Detector:
    """Callable on one CloudTrail record. Windowed rules keep their (bounded) state here, per process:
    a principal's events must reach the same listener for its bursts and sequences to be seen."""

    def __init__(self, sigma_dirs: list[Path] | tuple[Path, ...] = ()) -> None:
        catalogue = load_catalogue(sigma_dirs)
        self.engine = catalogue.engine()
        self.unsupported = catalogue.unsupported
        self.events = 0
        self.alerts: Counter[str] = Counter()

    def __call__(self, record: dict[str, Any]) -> list[ParsedFinding]:
        self.events += 1
        found = []
        for alert in self.engine.evaluate(record):
            self.alerts[alert.rule_id] += 1
            found.append(alert_to_finding(alert))
        return found
