"""A database worth containing, for the embedded AWS account (moto) and the tests.

A PostgreSQL instance someone made publicly accessible, in the demo VPC behind a DB subnet group, with
two security groups (the application's, and one open to the internet on 5432), a custom parameter
group with parameters set in it, IAM database authentication, enhanced monitoring, log exports and
tags. Optionally an Aurora PostgreSQL cluster with two public members (a writer and a reader).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import boto3

from irflow.devstack.demo import sample_finding

PASSWORD = "Demo-password-1!"  # moto stores it; no real database ever sees it


@dataclass(frozen=True)
class DemoDatabase:
    account_id: str
    region: str
    vpc_id: str
    db_instance_id: str
    db_instance_arn: str
    security_group_ids: list[str]
    subnet_group: str
    parameter_group: str
    engine: str
    cluster_id: str | None = None
    member_ids: list[str] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _database_groups(ec2, vpc_id: str, name: str) -> list[str]:
    app = ec2.create_security_group(GroupName=f"{name}-db-app", Description="database: app tier", VpcId=vpc_id)
    ec2.authorize_security_group_ingress(
        GroupId=app["GroupId"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
        ],
    )
    anywhere = ec2.create_security_group(
        GroupName=f"{name}-db-anywhere", Description="database: opened for a vendor, never closed", VpcId=vpc_id
    )
    ec2.authorize_security_group_ingress(
        GroupId=anywhere["GroupId"],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    return [app["GroupId"], anywhere["GroupId"]]


def seed_rds_instance(
    account_id: str, region: str, vpc_id: str, subnet_ids: list[str], name: str = "demo"
) -> DemoDatabase:
    """A publicly accessible PostgreSQL instance in the given VPC (subnets in two zones)."""
    ec2 = boto3.client("ec2", region_name=region)
    rds = boto3.client("rds", region_name=region)
    groups = _database_groups(ec2, vpc_id, name)
    subnet_group = f"{name}-db-subnets"
    rds.create_db_subnet_group(
        DBSubnetGroupName=subnet_group, DBSubnetGroupDescription="demo database subnets", SubnetIds=subnet_ids
    )
    parameter_group = f"{name}-postgres16"
    rds.create_db_parameter_group(
        DBParameterGroupName=parameter_group, DBParameterGroupFamily="postgres16", Description="demo database"
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=parameter_group,
        Parameters=[
            {"ParameterName": "log_connections", "ParameterValue": "1", "ApplyMethod": "immediate"},
            {"ParameterName": "rds.force_ssl", "ParameterValue": "0", "ApplyMethod": "immediate"},
        ],
    )
    identifier = f"{name}-orders-db"
    record = rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        EngineVersion="16.3",
        MasterUsername="orders_admin",
        MasterUserPassword=PASSWORD,
        AllocatedStorage=20,
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=groups,
        DBParameterGroupName=parameter_group,
        PubliclyAccessible=True,
        EnableIAMDatabaseAuthentication=True,
        EnableCloudwatchLogsExports=["postgresql"],
        MonitoringInterval=60,
        MonitoringRoleArn=f"arn:aws:iam::{account_id}:role/rds-monitoring-role",
        Tags=[{"Key": "app", "Value": "shop"}, {"Key": "data", "Value": "orders"}],
    )["DBInstance"]
    return DemoDatabase(
        account_id=account_id,
        region=region,
        vpc_id=vpc_id,
        db_instance_id=identifier,
        db_instance_arn=record["DBInstanceArn"],
        security_group_ids=groups,
        subnet_group=subnet_group,
        parameter_group=parameter_group,
        engine="postgres",
    )


def seed_aurora_cluster(
    account_id: str, region: str, vpc_id: str, subnet_ids: list[str], name: str = "demo"
) -> DemoDatabase:
    """An Aurora PostgreSQL cluster with a custom cluster parameter group and two public members."""
    ec2 = boto3.client("ec2", region_name=region)
    rds = boto3.client("rds", region_name=region)
    groups = _database_groups(ec2, vpc_id, f"{name}-aurora")
    subnet_group = f"{name}-aurora-subnets"
    rds.create_db_subnet_group(
        DBSubnetGroupName=subnet_group, DBSubnetGroupDescription="demo cluster subnets", SubnetIds=subnet_ids
    )
    parameter_group = f"{name}-aurora-postgresql16"
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=parameter_group,
        DBParameterGroupFamily="aurora-postgresql16",
        Description="demo cluster",
    )
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=parameter_group,
        Parameters=[{"ParameterName": "log_connections", "ParameterValue": "1", "ApplyMethod": "immediate"}],
    )
    cluster = f"{name}-ledger"
    rds.create_db_cluster(
        DBClusterIdentifier=cluster,
        Engine="aurora-postgresql",
        EngineVersion="16.2",
        MasterUsername="ledger_admin",
        MasterUserPassword=PASSWORD,
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=groups,
        DBClusterParameterGroupName=parameter_group,
        Tags=[{"Key": "app", "Value": "ledger"}],
    )
    members = [f"{cluster}-1", f"{cluster}-2"]
    records = [
        rds.create_db_instance(
            DBInstanceIdentifier=member,
            DBClusterIdentifier=cluster,
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
            PubliclyAccessible=True,
            Tags=[{"Key": "app", "Value": "ledger"}],
        )["DBInstance"]
        for member in members
    ]
    return DemoDatabase(
        account_id=account_id,
        region=region,
        vpc_id=vpc_id,
        db_instance_id=members[0],
        db_instance_arn=records[0]["DBInstanceArn"],
        security_group_ids=groups,
        subnet_group=subnet_group,
        parameter_group=parameter_group,
        engine="aurora-postgresql",
        cluster_id=cluster,
        member_ids=members,
    )


def sample_rds_finding(
    db_instance_id: str,
    account_id: str = "123456789012",
    region: str = "us-east-1",
    severity: float = 8.0,
    finding_type: str = "CredentialAccess:RDS/MaliciousIPCaller.SuccessfulLogin",
    cluster_id: str | None = None,
    engine: str = "postgres",
    db_user: str = "orders_app",
    finding_id: str = "d4e5f60718293a4b5c6d7e8f901a2b3c",
) -> dict[str, Any]:
    """A GuardDuty event (RDS Protection): a known-bad address logged in to the database as `db_user`."""
    event = sample_finding("i-0123456789abcdef0", account_id, region, severity=severity, finding_type=finding_type)
    detail = event["detail"]
    detail["id"] = finding_id
    detail["arn"] = (
        f"arn:aws:guardduty:{region}:{account_id}:detector/{detail['service']['detectorId']}/finding/{finding_id}"
    )
    instance = {
        "dbInstanceIdentifier": db_instance_id,
        "engine": engine,
        "engineVersion": "16.3",
        "dbInstanceArn": f"arn:aws:rds:{region}:{account_id}:db:{db_instance_id}",
        "tags": [],
    }
    if cluster_id:
        instance["dbClusterIdentifier"] = cluster_id
    detail["resource"] = {
        "resourceType": "RDSDBInstance",
        "rdsDbInstanceDetails": instance,
        "rdsDbUserDetails": {
            "user": db_user,
            "application": "psql",
            "database": "orders",
            "ssl": "false",
            "authMethod": "password",
        },
    }
    detail["service"]["action"] = {
        "actionType": "RDS_LOGIN_ATTEMPT",
        "rdsLoginAttemptAction": {
            "remoteIpDetails": {
                "ipAddressV4": "198.51.100.23",
                "organization": {"asn": "64496", "asnOrg": "EXAMPLE-NET", "isp": "Example", "org": "Example"},
                "country": {"countryName": "Example"},
            },
            "loginAttributes": [
                {"user": db_user, "application": "psql", "successfulLoginAttempts": 1, "failedLoginAttempts": 3}
            ],
        },
    }
    detail["service"].pop("additionalInfo", None)
    detail["title"] = f"A malicious IP address successfully logged in to RDS database {db_instance_id}."
    detail["description"] = (
        f"IP address 198.51.100.23, associated with known malicious activity, logged in to RDS database "
        f"{db_instance_id} as {db_user}."
    )
    return event
