"""The detector the finding listener runs on CloudTrail events: rules in, irflow findings out."""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from irflow.detection.catalogue import load_catalogue
from irflow.detection.findings import alert_to_finding
from irflow.detection.tamper import tamper_finding
from irflow.models.finding import ParsedFinding, Severity
from irflow.own_principals import made_by_own_principal

log = logging.getLogger(__name__)

MAX_GROUPS = 10_000  # (rule, subject) pairs remembered for grouping; the least recently alerted go first


@dataclass
class _Group:
    """Alerts of one rule about one subject within the grouping period: one finding, its count rising."""

    finding_id: str
    started: datetime
    first_seen: datetime | None
    count: int = 0  # matching events so far
    alerts: int = 0


def _milestone(alerts: int) -> bool:
    """The 1st, 2nd, 10th, 100th… alert of a group reaches the incident; the ones between are counted."""
    if alerts <= 2:
        return True
    while alerts % 10 == 0:
        alerts //= 10
    return alerts == 1


class Detector:
    """Callable on one CloudTrail record. Windowed rules keep their (bounded) state here, per process:
    a principal's events must reach the same listener for its bursts and sequences to be seen.

    An alert at or above `min_severity` becomes a finding (and so opens or joins an incident); one below
    it is a hunting lead: counted in `below_floor`, logged, and nothing more.

    Alerts of one rule about one subject (the key, role, bucket or instance the finding is about) within
    `group_seconds` of event time are one finding whose count rises, as GuardDuty updates a finding rather
    than raising it again: the 1st, 2nd, 10th, 100th… reach the incident (same finding id, the count and the
    last sighting updated); the others are counted in `grouped`. An attacker's script calling the same API
    ten thousand times makes six signals, not ten thousand, so the incident's history stays bounded.

    Records made by irflow's own principals (`own_principals`, ARN globs matched against the caller's ARN
    and, for a role session, the role that issued it: see irflow.own_principals) are never evaluated: its
    containment and its undo call the very APIs the rules watch, and an undo must not re-open the incident
    it closes. They are counted in `own` (by event name), which the listener's closing summary reports.

    A record by anyone else that could undo a containment (`irflow.detection.tamper`) also yields a tamper finding,
    counted in `tamper` (by event name): never grouped, never under the floor, it only joins the running incidents
    that guard what the call touched (`irflow.intake.tamper`). The rules still judge the same record on its merits."""

    def __init__(
        self,
        sigma_dirs: list[Path] | tuple[Path, ...] = (),
        min_severity: Severity = Severity.MEDIUM,
        disabled: Iterable[str] = (),
        python_dirs: Iterable[Path | str] = (),
        group_seconds: float = 3600,
        own_principals: Iterable[str] = (),
    ) -> None:
        catalogue = load_catalogue(sigma_dirs, disabled=disabled, python_dirs=python_dirs)
        self.engine = catalogue.engine()
        self.unsupported = catalogue.unsupported
        self.disabled = [r.rule_id for r in catalogue.disabled]
        self.min_severity = min_severity
        self.group_seconds = group_seconds
        self.events = 0
        self.alerts: Counter[str] = Counter()
        self.below_floor: Counter[str] = Counter()
        self.grouped: Counter[str] = Counter()
        self.own_principals = list(own_principals)
        self.own: Counter[str] = Counter()  # irflow's own records, skipped unevaluated
        self.tamper: Counter[str] = Counter()  # calls that may undo a containment, by anyone else
        self._groups: OrderedDict[tuple[str, str], _Group] = OrderedDict()

    def __call__(self, record: dict[str, Any]) -> list[ParsedFinding]:
        self.events += 1
        if self.own_principals and made_by_own_principal(record, self.own_principals):
            self.own[str(record.get("eventName", ""))] += 1
            return []
        found: list[ParsedFinding] = []
        tampered = tamper_finding(record)
        if tampered is not None:
            self.tamper[str(record.get("eventName", ""))] += 1
            found.append(tampered)
        for alert in self.engine.evaluate(record):
            if alert.severity.rank < self.min_severity.rank:
                self.below_floor[alert.rule_id] += 1  # the count is the record; one line per lead is debug only
                log.debug(
                    "detection lead below %s (no incident): %s %s event %s",
                    self.min_severity,
                    alert.rule_id,
                    alert.title,
                    record.get("eventID"),
                )
                continue
            self.alerts[alert.rule_id] += 1
            parsed = self._grouped(alert.rule_id, alert_to_finding(alert))
            if parsed is not None:
                found.append(parsed)
        return found

    def _grouped(self, rule_id: str, parsed: ParsedFinding) -> ParsedFinding | None:
        if self.group_seconds <= 0:
            return parsed
        finding = parsed.finding
        key = (rule_id, finding.resource.resource_id)
        at = finding.last_seen or finding.created_at
        group = self._groups.get(key)
        if group is None or abs((at - group.started).total_seconds()) >= self.group_seconds:
            group = _Group(finding.id, at, finding.first_seen)
            self._groups[key] = group
            if len(self._groups) > MAX_GROUPS:
                self._groups.popitem(last=False)
        self._groups.move_to_end(key)
        group.count += finding.count
        group.alerts += 1
        if not _milestone(group.alerts):
            self.grouped[rule_id] += 1
            return None
        if group.alerts == 1:
            return parsed
        update = {"id": group.finding_id, "count": group.count, "first_seen": group.first_seen or finding.first_seen}
        return ParsedFinding(
            finding=finding.model_copy(update=update), original_shape=parsed.original_shape, raw=parsed.raw
        )
