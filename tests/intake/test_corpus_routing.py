"""Acceptance: every public finding in ../shared/corpora through the intake as the listener runs it
(unwrap → suppression filters with default settings → router), each ending routed (to a playbook),
suppressed (with a reason) or rejected (with a code and a reason). Nothing crashes, nothing is vague."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from intake.envelopes import unwrap
from intake.filters import suppression_reason
from intake.router import EC2_PLAYBOOK, route
from models.finding import FindingRejected
from models.settings import IrflowSettings
from tests.support import CORPORA

GUARDDUTY = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").open() if line.strip()]
ASFF = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]

# Every code the intake gives, parse or route. A code outside this list is a new, undocumented one.
KNOWN_CODES = {
    "not_json",
    "not_an_object",
    "empty",
    "unsupported_event",
    "invalid_event",
    "unsupported_format",
    "not_a_finding",
    "no_resource",
    "invalid_finding",
    "region_mismatch",
    "no_playbook",
    "no_instance_id",
    "invalid_resource_id",
}
# Corpus records are real findings: none may be turned away as malformed or unrecognised.
CODES_FOR_REAL_FINDINGS = {"no_resource", "region_mismatch", "no_playbook", "no_instance_id", "invalid_resource_id"}


@dataclass(frozen=True)
class Outcome:
    source: str  # which corpus and which field the document came from
    document: str  # where in the corpus
    outcome: str  # routed | suppressed | rejected | crashed
    detail: str  # playbook, suppression reason, rejection code, or the exception
    reason: str = ""
    finding_id: str | None = None
    finding_type: str | None = None
    resource_id: str | None = None
    title: str | None = None


@pytest.fixture(scope="module")
def settings() -> IrflowSettings:
    """The defaults, whatever the shell running the tests exports."""
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("IRFLOW_")}
    try:
        return IrflowSettings()
    finally:
        os.environ.update(saved)


def _intake(source: str, where: str, document: Any, settings: IrflowSettings) -> list[Outcome]:
    """One corpus document through the intake, the way the listener handles one queue message."""
    try:
        results = unwrap(document)
    except Exception as error:  # noqa: BLE001 (a crash is what this test exists to find)
        return [Outcome(source, where, "crashed", f"unwrap: {type(error).__name__}: {error}")]
    outcomes = []
    for result in results:
        if isinstance(result, FindingRejected):
            outcomes.append(Outcome(source, where, "rejected", result.code, result.reason))
            continue
        finding = result.finding
        about = {
            "finding_id": finding.id,
            "finding_type": finding.type,
            "resource_id": finding.resource.resource_id,
            "title": finding.title,
        }
        try:
            reason = suppression_reason(finding, settings)
            if reason:
                outcomes.append(Outcome(source, where, "suppressed", reason, reason, **about))
                continue
            destination = route(finding)
        except FindingRejected as rejected:
            outcomes.append(Outcome(source, where, "rejected", rejected.code, rejected.reason, **about))
        except Exception as error:  # noqa: BLE001
            outcomes.append(Outcome(source, where, "crashed", f"{type(error).__name__}: {error}", **about))
        else:
            outcomes.append(Outcome(source, where, "routed", destination.playbook, destination.incident_key, **about))
    return outcomes


def _documents() -> list[tuple[str, str, Any, list[str]]]:
    """(source, where, document, ids of the findings it carries)."""
    documents = []
    for number, line in enumerate(GUARDDUTY, start=1):
        finding_id = line["event_eventbridge"]["detail"]["id"]
        for field in ("event_eventbridge", "event_original"):
            documents.append((f"guardduty {field}", f"findings.jsonl:{number}", line[field], [finding_id]))
    for number, line in enumerate(ASFF, start=1):
        documents.append(
            ("securityhub finding", f"asff_findings.jsonl:{number}", line["finding"], [line["finding"]["Id"]])
        )
        event = line.get("eventbridge_event")
        if isinstance(event, dict):
            ids = [f["Id"] for f in event["detail"]["findings"]]
            documents.append(("securityhub eventbridge_event", f"asff_findings.jsonl:{number}", event, ids))
    return documents


DOCUMENTS = _documents()


@pytest.fixture(scope="module")
def outcomes(settings) -> list[tuple[list[str], list[Outcome]]]:
    return [(ids, _intake(source, where, document, settings)) for source, where, document, ids in DOCUMENTS]


def _summary_key(outcome: Outcome) -> str:
    """Suppression reasons name accounts and severities; counted by their rule, as the listener does."""
    if outcome.outcome == "suppressed":
        return outcome.detail.split(" (")[0].split(":")[0]
    return outcome.detail


def test_every_corpus_finding_is_routed_suppressed_or_rejected_with_a_specific_reason(outcomes):
    flat = [o for _, found in outcomes for o in found]
    counts = Counter((o.source, o.outcome, _summary_key(o)) for o in flat)
    totals = Counter(o.outcome for o in flat)
    print(f"\nintake of {len(DOCUMENTS)} corpus documents, {len(flat)} findings: {dict(totals)}")
    for (source, outcome, detail), count in sorted(counts.items()):
        print(f"  {source:32} {outcome:10} {detail:60} {count}")
    print("routed:")
    for o in flat:
        if o.outcome == "routed":
            print(f"  {o.source:32} {o.document:24} {o.detail} {o.reason}  [{o.finding_type}] {o.title}")

    crashes = [f"{o.source} {o.document}: {o.detail}" for o in flat if o.outcome == "crashed"]
    assert crashes == []
    vague = []
    for ids, found in outcomes:
        assert found, f"{ids} came out of the intake as nothing at all"
        for o in found:
            if o.outcome == "rejected":
                if o.detail not in KNOWN_CODES or o.detail not in CODES_FOR_REAL_FINDINGS or not o.reason.strip():
                    vague.append(f"{o.source} {o.document}: {o.detail}: {o.reason}")
                # The reason names the finding (parse) or what it is about (route), so a human can act on it.
                elif not any(name and name in o.reason for name in (*ids, o.finding_type, o.resource_id)):
                    vague.append(f"{o.source} {o.document}: {o.detail} names neither finding nor resource: {o.reason}")
            elif o.outcome == "suppressed" and len(o.reason.strip()) < 10:
                vague.append(f"{o.source} {o.document}: suppressed without a reason")
            elif o.outcome == "routed" and o.detail != EC2_PLAYBOOK:
                vague.append(f"{o.source} {o.document}: routed to unknown playbook {o.detail}")
    assert vague == []
    assert len(flat) == 2 * 151 + 158 + 8


def test_each_document_yields_one_outcome_per_finding_it_carries(outcomes):
    for ids, found in outcomes:
        assert len(found) == len(ids), (ids, found)
        for finding_id, outcome in zip(ids, found, strict=True):
            assert outcome.finding_id in (None, finding_id), (finding_id, outcome)


def test_both_shapes_of_every_guardduty_finding_end_the_same_way(outcomes):
    guardduty = [found for (ids, found) in outcomes if found and found[0].source.startswith("guardduty")]
    assert len(guardduty) == 2 * 151
    for wrapped, original in zip(guardduty[0::2], guardduty[1::2], strict=True):
        [a], [b] = wrapped, original
        assert (a.outcome, a.detail, a.finding_id) == (b.outcome, b.detail, b.finding_id), (a.document, a, b)


def test_custom_action_events_end_like_the_findings_they_carry(outcomes):
    by_document: dict[str, dict[str, list[Outcome]]] = {}
    for _, found in outcomes:
        for o in found:
            by_document.setdefault(o.document, {}).setdefault(o.source, []).append(o)
    events = [sources for sources in by_document.values() if "securityhub eventbridge_event" in sources]
    assert len(events) == 8
    for sources in events:
        [finding] = sources["securityhub finding"]
        [carried] = sources["securityhub eventbridge_event"]
        assert (finding.outcome, finding.detail) == (carried.outcome, carried.detail)


def test_the_corpus_rejections_are_the_known_ones(outcomes):
    rejected = Counter(
        (o.source.split()[0], o.detail) for _, found in outcomes for o in found if o.outcome == "rejected"
    )
    # GuardDuty: 6 findings name no resource and 1 names two regions, each in both of its shapes.
    assert rejected[("guardduty", "no_resource")] == 2 * 6
    assert rejected[("guardduty", "region_mismatch")] == 2 * 1
    # Security Hub: one AutoScaling control whose resource ARN is in another region than it says.
    assert rejected[("securityhub", "region_mismatch")] == 1
    assert {code for _, code in rejected} <= CODES_FOR_REAL_FINDINGS


def test_only_ec2_instances_are_routed_and_each_to_its_own_incident_key(outcomes):
    routed = [o for _, found in outcomes for o in found if o.outcome == "routed"]
    assert routed, "the corpus has routable EC2 findings; none routed"
    for o in routed:
        assert o.detail == EC2_PLAYBOOK
        assert o.reason.startswith("ec2-"), o.reason
    assert {o.source for o in routed} >= {"guardduty event_eventbridge", "guardduty event_original"}
