"""The detector the finding listener runs on CloudTrail events: rules in, irflow findings out."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from detection.catalogue import load_catalogue
from detection.findings import alert_to_finding
from models.finding import ParsedFinding, Severity

log = logging.getLogger(__name__)


class Detector:
    """Callable on one CloudTrail record. Windowed rules keep their (bounded) state here, per process:
    a principal's events must reach the same listener for its bursts and sequences to be seen.

    An alert at or above `min_severity` becomes a finding (and so opens or joins an incident); one below
    it is a hunting lead: counted in `below_floor`, logged, and nothing more."""

    def __init__(
        self,
        sigma_dirs: list[Path] | tuple[Path, ...] = (),
        min_severity: Severity = Severity.MEDIUM,
        disabled: Iterable[str] = (),
        python_dirs: Iterable[Path | str] = (),
    ) -> None:
        catalogue = load_catalogue(sigma_dirs, disabled=disabled, python_dirs=python_dirs)
        self.engine = catalogue.engine()
        self.unsupported = catalogue.unsupported
        self.disabled = [r.rule_id for r in catalogue.disabled]
        self.min_severity = min_severity
        self.events = 0
        self.alerts: Counter[str] = Counter()
        self.below_floor: Counter[str] = Counter()

    def __call__(self, record: dict[str, Any]) -> list[ParsedFinding]:
        self.events += 1
        found = []
        for alert in self.engine.evaluate(record):
            if alert.severity.rank < self.min_severity.rank:
                self.below_floor[alert.rule_id] += 1
                log.info(
                    "detection lead below %s (no incident): %s %s event %s",
                    self.min_severity,
                    alert.rule_id,
                    alert.title,
                    record.get("eventID"),
                )
                continue
            self.alerts[alert.rule_id] += 1
            found.append(alert_to_finding(alert))
        return found
