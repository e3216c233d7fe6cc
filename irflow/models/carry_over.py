"""What an incident carries from one run to the next when it continues as new (`workflows.carry_over`).

A storm of findings must not grow one run's history without bound: the incident hands its state to a fresh run
under the same workflow id. Everything the rest of the incident needs goes along (the record, the undo stack with
the prior state each undo restores, the pending question with its deadline, the guard's memory); findings go as a
summary, the latest few kept whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from irflow.models.finding import Finding, Severity

# Findings an incident that may continue as new keeps whole (the first, every one naming someone no other kept
# finding names, then the latest); the rest are counted in its summary.
KEPT_FINDINGS = 20
# How many distinct finding ids and types a summary names; beyond, it counts them.
SUMMARY_NAMES = 50


class FindingsSummary(BaseModel):
    """Every finding an incident absorbed, counted, though only the latest few are kept whole in
    `IncidentState.findings_absorbed` (an incident that never continued as new keeps them all and has none)."""

    absorbed: int = Field(default=1, description="distinct findings absorbed, the first included")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    highest: Severity = Severity.LOW
    ids: list[str] = Field(default_factory=list, description=f"distinct finding ids, the first {SUMMARY_NAMES}")
    types: list[str] = Field(default_factory=list, description=f"distinct finding types, the first {SUMMARY_NAMES}")
    ids_omitted: int = Field(default=0, description="distinct ids beyond those named")
    latest: Finding | None = None
    runs: int = Field(default=1, description="runs of the incident's workflow so far (continued as new)")

    def count(self, finding: Finding) -> None:
        self.absorbed += 1
        self.see(finding)

    def see(self, finding: Finding) -> None:
        seen, first = finding.last_seen or finding.observed_at, finding.observed_at
        self.first_seen = min(self.first_seen, first) if self.first_seen else first
        self.last_seen = max(self.last_seen, seen) if self.last_seen else seen
        if finding.severity.rank > self.highest.rank:
            self.highest = finding.severity
        if finding.id not in self.ids:
            if len(self.ids) < SUMMARY_NAMES:
                self.ids.append(finding.id)
            else:
                self.ids_omitted += 1  # counted once per arrival beyond the cap: a bound, not exact
        if finding.type not in self.types and len(self.types) < SUMMARY_NAMES:
            self.types.append(finding.type)
        self.latest = finding


class Encoded(BaseModel):
    """A value of a playbook's, or a step's argument, as it crosses to the next run: a pydantic model by its
    class (`module:qualname`), or plain JSON."""

    model: str = ""
    data: Any = None


class CarriedUndo(BaseModel):
    step: str
    undo: str = Field(description="the undo activity's name")
    argument: Encoded = Field(description="what it restores: the prior state recorded before the step acted")


class CarriedGuard(BaseModel):
    joined: list[Finding] = Field(default_factory=list, description="findings not yet checked against")
    unrepaired: list[str] = Field(default_factory=list)
    failing: list[str] = Field(default_factory=list)
    gone: list[str] = Field(default_factory=list)


class CarriedRecord(BaseModel):
    policy: dict[str, Any] = Field(description="the ResponsePolicy the incident started under, kept for good")
    guarded: list[str] = Field(default_factory=list)
    delivery_ids: list[str] = Field(default_factory=list, description="the latest ones: redeliveries are recognised")
    finding_keys: list[str] = Field(default_factory=list, description="id|updated_at|count of findings seen lately")
    raw_pending: dict[str, list[str]] = Field(default_factory=dict, description="sha256 -> (finding id, packed)")
    raw_stored: list[str] = Field(default_factory=list)
    raw_dropped: int = Field(default=0, description="original records beyond the carried cap, never stored")
    source_findings: list[tuple[str, str, Encoded]] = Field(
        default_factory=list, description="(source, id, the SourceFinding): what the incident tells AWS at its end"
    )
    not_told: dict[str, str] = Field(default_factory=dict)


def finding_key(finding: Finding) -> str:
    """A finding's version: a repeat (same id, same update, same count) is absorbed once."""
    return f"{finding.id}|{finding.updated_at.isoformat()}|{finding.count}"


def _names(finding: Finding) -> frozenset[str]:
    resource = finding.resource
    return frozenset(v for v in (resource.user_name, resource.principal_id, resource.access_key_id) if v)


def kept_findings(findings: list[Finding], cap: int = KEPT_FINDINGS) -> list[Finding]:
    """At most `cap` findings (more only when more name different people): the first, each naming someone the
    others do not (who may decide depends on it: `workflows.policy.affected_principal`), the strongest, the first
    sample, then the latest."""
    if len(findings) <= cap:
        return list(findings)
    # What the playbooks' plans read besides who is named: the strongest finding, whether one is a sample.
    strongest = max(findings, key=lambda f: f.severity_score)
    sample = next((f for f in findings if f.sample), None)
    kept = list(findings)
    at = 1
    while len(kept) > cap and at < len(kept) - 1:
        finding = kept[at]
        others = set().union(*(_names(f) for i, f in enumerate(kept) if i != at))
        if _names(finding) <= others and finding is not strongest and finding is not sample:
            del kept[at]
        else:
            at += 1
    return kept
