"""Acceptance: every public finding in tests/data/corpora through the intake as the listener runs it
(unwrap → suppression filters with default settings → router), each ending routed (to a playbook this
version runs, with a reason and an incident key), suppressed (with a reason) or rejected (with a code and
a reason). The router turns no real finding away: what no containment playbook fits goes to triage.
Nothing crashes, nothing is vague."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

import irflow.intake.router as router
from irflow.intake.envelopes import unwrap
from irflow.intake.filters import suppression_reason
from irflow.intake.router import EC2_PLAYBOOK, TRIAGE_PLAYBOOK, route
from irflow.models.finding import FindingRejected
from irflow.models.settings import IrflowSettings
from tests.support import CORPORA

GUARDDUTY = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").open() if line.strip()]
ASFF = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]

# Every code the intake gives, parse or route. A code outside this list is a new, undocumented one.
# The router's only one is invalid_override (a misconfigured IRFLOW_PLAYBOOK_OVERRIDES).
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
    "invalid_override",
}
# Corpus records are real findings: none may be turned away as malformed or unrecognised, and the router
# turns none away at all.
CODES_FOR_REAL_FINDINGS = {"no_resource", "region_mismatch"}
INSTANCE_ID = re.compile(r"i-([0-9a-f]{8}|[0-9a-f]{17})")
WORKFLOW_ID_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Outcome:
    source: str  # which corpus and which field the document came from
    document: str  # where in the corpus
    outcome: str  # routed | suppressed | rejected | crashed
    detail: str  # playbook, suppression reason, rejection code, or the exception
    reason: str = ""
    finding_id: str | None = None
    finding_type: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    instance_id: str | None = None
    title: str | None = None
    incident_key: str | None = None


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
            "resource_type": finding.resource.resource_type,
            "resource_id": finding.resource.resource_id,
            "instance_id": finding.resource.instance_id,
            "title": finding.title,
        }
        try:
            reason = suppression_reason(finding, settings)
            if reason:
                outcomes.append(Outcome(source, where, "suppressed", reason, reason, **about))
                continue
            destination = route(finding, settings.playbook_overrides)
        except FindingRejected as rejected:
            outcomes.append(Outcome(source, where, "rejected", rejected.code, rejected.reason, **about))
        except Exception as error:  # noqa: BLE001
            outcomes.append(Outcome(source, where, "crashed", f"{type(error).__name__}: {error}", **about))
        else:
            outcomes.append(
                Outcome(
                    source,
                    where,
                    "routed",
                    destination.playbook,
                    destination.reason,
                    incident_key=destination.incident_key,
                    **about,
                )
            )
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
            print(f"  {o.source:32} {o.document:24} {o.detail:20} {o.incident_key}  [{o.finding_type}] {o.reason}")

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
            elif o.outcome == "routed" and o.detail not in router.AVAILABLE_PLAYBOOKS:
                vague.append(f"{o.source} {o.document}: routed to a playbook this version cannot run: {o.detail}")
            elif o.outcome == "routed" and len(o.reason.strip()) < 10:
                vague.append(f"{o.source} {o.document}: routed to {o.detail} without a reason")
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
        ending = (a.outcome, a.detail, a.finding_id, a.incident_key)
        assert ending == (b.outcome, b.detail, b.finding_id, b.incident_key), (a.document, a, b)


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
        ending = (finding.outcome, finding.detail, finding.incident_key)
        assert ending == (carried.outcome, carried.detail, carried.incident_key)


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


def test_the_router_turns_no_corpus_finding_away(outcomes):
    flat = [o for _, found in outcomes for o in found]
    parsed = [o for o in flat if o.finding_id is not None]
    assert parsed and all(o.outcome in ("routed", "suppressed") for o in parsed), [
        (o.document, o.detail) for o in parsed if o.outcome not in ("routed", "suppressed")
    ]


def test_ec2_instances_go_to_the_ec2_playbook_and_everything_else_to_an_available_one(outcomes):
    routed = [o for _, found in outcomes for o in found if o.outcome == "routed"]
    by_playbook = Counter(o.detail for o in routed)
    print(f"\nrouted corpus findings by playbook: {dict(sorted(by_playbook.items()))}")
    assert by_playbook[EC2_PLAYBOOK] > 0 and by_playbook[TRIAGE_PLAYBOOK] > 0
    assert set(by_playbook) <= router.AVAILABLE_PLAYBOOKS
    for o in routed:
        names_an_instance = o.resource_type == "Instance" and INSTANCE_ID.fullmatch(o.instance_id or "")
        if names_an_instance:
            assert o.detail == EC2_PLAYBOOK, (o.document, o.finding_type, o.reason)
        else:
            assert o.detail != EC2_PLAYBOOK, (o.document, o.resource_type, o.instance_id)
        assert WORKFLOW_ID_CHARACTERS.fullmatch(o.incident_key), o.incident_key
        assert o.incident_key.startswith(router._KEY_PREFIX[o.detail] + "-"), (o.detail, o.incident_key)
    assert {o.source for o in routed if o.detail == EC2_PLAYBOOK} >= {
        "guardduty event_eventbridge",
        "guardduty event_original",
    }


def test_each_ec2_instance_is_its_own_incident(outcomes):
    instances: dict[str, set[str]] = {}
    for _, found in outcomes:
        for o in found:
            if o.outcome == "routed" and o.detail == EC2_PLAYBOOK:
                instances.setdefault(o.incident_key, set()).add(o.instance_id)
                assert o.instance_id in o.incident_key
    assert instances and all(len(ids) == 1 for ids in instances.values()), instances
