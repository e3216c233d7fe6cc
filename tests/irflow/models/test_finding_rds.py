"""RDS findings in every shape (EventBridge envelope, bare detail, boto3's PascalCase, Security Hub ASFF):
the instance, its cluster and the database user the finding names."""

from __future__ import annotations

from irflow.devstack.demo import sample_finding
from irflow.devstack.demo_rds import sample_rds_finding
from irflow.models.asff import parse_asff
from irflow.models.finding import parse_guardduty
from irflow.models.rds import db_instance_name


def _pascal(value):
    """A record as boto3's GetFindings returns it (PascalCase keys)."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def test_the_finding_names_instance_cluster_and_user_in_every_shape(workload):
    event = sample_rds_finding("orders-db", workload.account_id, workload.region, cluster_id="orders-cluster")
    expected = ("orders-cluster", {"user": "orders_app", "database": "orders", "application": "psql"})
    resource = parse_guardduty(event).finding.resource
    assert resource.db_cluster_id == expected[0] and expected[1].items() <= resource.db_user.items()
    assert parse_guardduty(event["detail"]).finding.resource.db_cluster_id == "orders-cluster"
    detail = {**event["detail"], "resource": {**event["detail"]["resource"], "rdsDbUserDetails": {"user": "u"}}}
    pascal = parse_guardduty(_pascal(detail)).finding.resource
    assert (pascal.db_cluster_id, pascal.db_user) == ("orders-cluster", {"user": "u"})
    asff = {
        "SchemaVersion": "2018-10-08",
        "Id": "arn:aws:securityhub:us-east-1:123456789012:finding/rds-1",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "AwsAccountId": "123456789012",
        "Types": ["TTPs/Credential Access/CredentialAccess:RDS-MaliciousIPCaller.SuccessfulLogin"],
        "CreatedAt": "2025-03-14T09:00:00Z",
        "UpdatedAt": "2025-03-14T09:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "Login from a known malicious address",
        "Region": "us-east-1",
        "Resources": [
            {
                "Type": "AwsRdsDbInstance",
                "Id": "arn:aws:rds:us-east-1:123456789012:db:orders-db",
                "Details": {"AwsRdsDbInstance": {"DbClusterIdentifier": "c"}},
            }
        ],
    }
    hub = parse_asff(asff).finding.resource
    assert (hub.db_cluster_id, hub.db_user) == ("c", {})
    plain = parse_guardduty(sample_finding("i-0123456789abcdef0")).finding.resource
    assert (plain.db_cluster_id, plain.db_user) == (None, {})
    assert db_instance_name("arn:aws:rds:us-east-1:123456789012:db:orders-db") == "orders-db"
    assert db_instance_name("orders-db") == "orders-db"
