"""The detector never alerts on irflow's own calls: opening its untrack group to the world (by design: flows through
it are untracked) is quiet when irflow does it and alerts when anyone else does; the listener learns its own
identity at start."""

from __future__ import annotations

from irflow.detection.detector import Detector
from irflow.models.settings import IrflowSettings
from irflow.own_principals import own_principal_patterns

ACCOUNT = "123456789012"
WORKER = f"arn:aws:sts::{ACCOUNT}:assumed-role/irflow-worker/worker-1"
WORKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/irflow-worker"
RESPONDER = "arn:aws:sts::210987654321:assumed-role/irflow-responder/irflow-responder"
RULE = "irflow.ec2.security-group-open-to-world"


def untrack_group_opened(caller: str, issuer: str | None = None, family: str = "ipRanges") -> dict:
    """The CloudTrail record of ec2_containment's `_authorize_all_traffic` on the untrack group, as AWS writes it."""
    identity: dict = {"type": "IAMUser", "arn": caller, "accountId": ACCOUNT}
    if issuer:
        identity = {
            "type": "AssumedRole",
            "arn": caller,
            "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": issuer, "accountId": ACCOUNT}},
        }
    cidr = {"ipRanges": {"cidrIp": "0.0.0.0/0"}, "ipv6Ranges": {"cidrIpv6": "::/0"}}[family]
    return {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": "2026-11-28T05:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "AuthorizeSecurityGroupIngress",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "Boto3/1.35.0",
        "requestParameters": {
            "groupId": "sg-0abc1234def567890",
            "ipPermissions": {"items": [{"ipProtocol": "-1", family: {"items": [cidr]}}]},
        },
        "responseElements": {"_return": True},
        "eventID": f"sg-{caller[-12:]}-{family}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }


def _alerting_rules(detector: Detector, record: dict) -> set[str]:
    return {f.raw["rule_id"] for f in detector(record)}


def test_the_untrack_group_opened_by_irflow_raises_nothing_and_by_anyone_else_alerts():
    detector = Detector(own_principals=own_principal_patterns(IrflowSettings(), WORKER))
    for family in ("ipRanges", "ipv6Ranges"):
        assert _alerting_rules(detector, untrack_group_opened(WORKER, WORKER_ROLE, family)) == set()
        assert _alerting_rules(detector, untrack_group_opened(RESPONDER, family=family)) == set()
        other = untrack_group_opened(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/mallory", f"arn:aws:iam::{ACCOUNT}:role/Admin", family
        )
        assert RULE in _alerting_rules(detector, other)
    assert detector.own == {"AuthorizeSecurityGroupIngress": 4}
    assert detector.events == 6 and detector.alerts[RULE] == 2


def test_a_session_of_irflows_role_is_known_by_the_role_that_issued_it():
    detector = Detector(own_principals=[WORKER_ROLE])
    record = untrack_group_opened(f"arn:aws:sts::{ACCOUNT}:assumed-role/irflow-worker/renamed-session", WORKER_ROLE)
    assert detector(record) == [] and detector.own["AuthorizeSecurityGroupIngress"] == 1


def test_without_own_principals_every_caller_is_evaluated():
    detector = Detector()
    assert RULE in _alerting_rules(detector, untrack_group_opened(WORKER, WORKER_ROLE))
    assert not detector.own


def test_skipped_records_log_nothing(caplog):
    detector = Detector(own_principals=[WORKER])
    with caplog.at_level("DEBUG"):
        for n in range(50):
            assert detector(untrack_group_opened(WORKER) | {"eventID": f"e{n}"}) == []
    assert detector.own["AuthorizeSecurityGroupIngress"] == 50
    assert not [r for r in caplog.records if r.name.startswith("irflow.detection")]
