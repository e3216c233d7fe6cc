"""RDS findings go to the RDS playbook when they name a DB instance, to triage when they do not."""

from __future__ import annotations

import json

from irflow.devstack.demo_rds import sample_rds_finding
from irflow.intake.router import RDS_PLAYBOOK, TRIAGE_PLAYBOOK, route
from irflow.models.finding import parse_guardduty
from tests.support import CORPORA


def test_rds_findings_route_to_the_rds_playbook_and_the_unnamed_to_triage(workload):
    parsed = parse_guardduty(sample_rds_finding("orders-db", workload.account_id, workload.region))
    assert (parsed.finding.resource.resource_type, parsed.finding.resource.resource_id) == (
        "RDSDBInstance",
        "orders-db",
    )
    assert route(parsed.finding).playbook == RDS_PLAYBOOK
    records = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").read_text().splitlines()]
    for record in (r for r in records if r.get("resource_type") == "RDSDBInstance"):
        finding = parse_guardduty(record["event_eventbridge"]).finding
        expected = RDS_PLAYBOOK if finding.resource.resource_id else TRIAGE_PLAYBOOK
        assert route(finding).playbook == expected, record["type"]
    limitless = sample_rds_finding("orders-db", workload.account_id, workload.region)
    limitless["detail"]["resource"] = {
        "resourceType": "RDSLimitlessDB",
        "rdsLimitlessDbDetails": {"dbShardGroupIdentifier": "s"},
    }
    assert route(parse_guardduty(limitless).finding).playbook == TRIAGE_PLAYBOOK
