"""The detector the finding listener runs on CloudTrail events: rules in, irflow findings out."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from irflow.detection.catalogue import load_catalogue
from irflow.detection.findings import alert_to_finding
from irflow.detection.shared_state import MemoryState, SharedState, StateUnavailable
from irflow.detection.tamper import tamper_finding
from irflow.detection.windowed import KEEP_MARGIN_SECONDS, WindowedRule
from irflow.models.finding import ParsedFinding, Severity
from irflow.own_principals import made_by_own_principal

log = logging.getLogger(__name__)

MAX_GROUPS = 10_000  # (rule, subject) pairs remembered for grouping in memory; the least recently alerted go first


def _milestone(alerts: int) -> bool:
    """The 1st, 2nd, 10th, 100th… alert of a group reaches the incident; the ones between are counted."""
    if alerts <= 2:
        return True
    while alerts % 10 == 0:
        alerts //= 10
    return alerts == 1


class Detector:
    """Callable on one CloudTrail record. Windowed rules and alert groups keep their (bounded) state in this
    process, unless `state` is given: a shared state (`irflow.detection.shared_state.DynamoState`, IRFLOW_STATE_TABLE)
    that every listener's detector updates, so a principal's events may reach any listener and a burst split between
    listeners still alerts once, into one group. Shared, the detector may be called from several threads at once.

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
        state: SharedState | None = None,
    ) -> None:
        catalogue = load_catalogue(sigma_dirs, disabled=disabled, python_dirs=python_dirs)
        self.engine = catalogue.engine()
        self.shared = state
        if state is not None:
            for rule in self.engine.rules:
                if isinstance(rule, WindowedRule):
                    rule.share(state)
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
        self._groups: SharedState = state if state is not None else MemoryState(max_keys=MAX_GROUPS)
        self._group_failures = 0
        self._counting = threading.Lock()  # counters stay exact when a shared detector runs on several threads

    def _count(self, counter: Counter[str], key: str) -> None:
        with self._counting:
            counter[key] += 1

    def __call__(self, record: dict[str, Any]) -> list[ParsedFinding]:
        with self._counting:
            self.events += 1
        if self.own_principals and made_by_own_principal(record, self.own_principals):
            self._count(self.own, str(record.get("eventName", "")))
            return []
        found: list[ParsedFinding] = []
        tampered = tamper_finding(record)
        if tampered is not None:
            self._count(self.tamper, str(record.get("eventName", "")))
            found.append(tampered)
        for alert in self.engine.evaluate(record):
            if alert.severity.rank < self.min_severity.rank:
                self._count(self.below_floor, alert.rule_id)  # the count is the record; one line per lead is debug
                log.debug(
                    "detection lead below %s (no incident): %s %s event %s",
                    self.min_severity,
                    alert.rule_id,
                    alert.title,
                    record.get("eventID"),
                )
                continue
            self._count(self.alerts, alert.rule_id)
            parsed = self._grouped(alert.rule_id, alert_to_finding(alert))
            if parsed is not None:
                found.append(parsed)
        return found

    def _grouped(self, rule_id: str, parsed: ParsedFinding) -> ParsedFinding | None:
        if self.group_seconds <= 0:
            return parsed
        finding = parsed.finding
        at = finding.last_seen or finding.created_at
        try:
            group = self._groups.join_group(
                f"group#{rule_id}#{finding.resource.resource_id}",
                at.timestamp(),
                self.group_seconds,
                finding.id,
                finding.first_seen.isoformat() if finding.first_seen else None,
                finding.count,
                time.time() + self.group_seconds + KEEP_MARGIN_SECONDS,
            )
        except StateUnavailable as error:  # an alert too many beats an alert lost
            self._group_failures += 1
            if self._group_failures & (self._group_failures - 1) == 0:
                log.warning(
                    "alert groups unavailable (%d time(s)); sending alerts ungrouped: %s", self._group_failures, error
                )
            return parsed
        if not _milestone(group.alerts):
            self._count(self.grouped, rule_id)
            return None
        if group.alerts == 1:
            return parsed
        first_seen = datetime.fromisoformat(group.first_seen) if group.first_seen else finding.first_seen
        update = {"id": group.finding_id, "count": group.count, "first_seen": first_seen}
        return ParsedFinding(
            finding=finding.model_copy(update=update), original_shape=parsed.original_shape, raw=parsed.raw
        )
