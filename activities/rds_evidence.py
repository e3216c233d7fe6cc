"""RDS evidence: the incident's snapshot (a cluster snapshot for Aurora: RDS refuses DB snapshots of
cluster members) and the configuration before containment and now, each part best effort.

The snapshot is a containment step with no undo: it is evidence, and it stays whatever happens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import INVALID_REQUEST, aws_activity, best_effort, client, error_code, typed_aws_errors
from activities.evidence import EVIDENCE_WRITE_ACTIONS, store_evidence, to_json_bytes
from activities.rds import (
    CONTAIN_PATIENCE_SECONDS,
    DESCRIBE_ACTIONS,
    cluster_instances,
    describe_cluster,
    describe_instance,
    rds_client,
    when_ready,
)
from irflow.models.evidence import EvidenceObject
from irflow.models.incident import StepResult
from irflow.models.rds import DbStepInput, snapshot_identifier
from irflow.models.tagging import INCIDENT_TAG

SOURCE_TAG = "irflow:source"


# --- snapshot (evidence: never undone) ---


def _snapshot_detail(snapshot: dict, kind: str, source: str) -> dict[str, Any]:
    identifier = snapshot.get("DBClusterSnapshotIdentifier") or snapshot.get("DBSnapshotIdentifier")
    created = snapshot.get("SnapshotCreateTime")
    return {
        "snapshot_id": identifier,
        "snapshot_arn": snapshot.get("DBClusterSnapshotArn") or snapshot.get("DBSnapshotArn"),
        "kind": kind,
        "source": source,
        "status": snapshot.get("Status", "creating"),
        "created": created.isoformat() if isinstance(created, datetime) else created,
    }


def _existing_snapshot(rds, cluster: bool, name: str) -> dict | None:
    try:
        if cluster:
            found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"]
        else:
            found = rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"]
    except ClientError as error:
        if error_code(error) in ("DBSnapshotNotFound", "DBSnapshotNotFoundFault", "DBClusterSnapshotNotFoundFault"):
            return None
        raise
    return found[0] if found else None


@aws_activity(
    *DESCRIBE_ACTIONS,
    "rds:DescribeDBSnapshots",
    "rds:CreateDBSnapshot",
    "rds:DescribeDBClusterSnapshots",
    "rds:CreateDBClusterSnapshot",
    "rds:AddTagsToResource",
)
def snapshot_db_instance(step: DbStepInput) -> StepResult:
    """A manual snapshot named after the incident (a cluster snapshot for Aurora), tagged with it. A retry
    finds the one already made. Manual snapshots outlive the instance; nothing undoes this step."""
    rds, prior, incident = rds_client(step.target), step.prior, step.target.incident_id
    name = snapshot_identifier(incident)
    cluster = prior.cluster is not None
    source = prior.cluster.identifier if prior.cluster else prior.db_instance_identifier
    kind = "db-cluster-snapshot" if cluster else "db-snapshot"
    with typed_aws_errors(f"look for snapshot {name}"):
        existing = _existing_snapshot(rds, cluster, name)
    if existing is None:
        tags = [
            {"Key": INCIDENT_TAG, "Value": incident},
            {"Key": SOURCE_TAG, "Value": source},
            {"Key": "Name", "Value": f"irflow evidence {incident}"},
        ]
        if cluster:
            act = lambda: rds.create_db_cluster_snapshot(  # noqa: E731
                DBClusterIdentifier=source, DBClusterSnapshotIdentifier=name, Tags=tags
            )["DBClusterSnapshot"]
            status = lambda: describe_cluster(rds, source).get("Status", "")  # noqa: E731
        else:
            act = lambda: rds.create_db_snapshot(  # noqa: E731
                DBInstanceIdentifier=source, DBSnapshotIdentifier=name, Tags=tags
            )["DBSnapshot"]
            status = lambda: describe_instance(rds, source).get("DBInstanceStatus", "")  # noqa: E731
        try:
            snapshot = when_ready(act, status, f"snapshot {source} as {name}", CONTAIN_PATIENCE_SECONDS)
            return StepResult(changed=True, detail=_snapshot_detail(snapshot, kind, source))
        except ClientError as error:
            if error_code(error) not in ("DBSnapshotAlreadyExists", "DBClusterSnapshotAlreadyExistsFault"):
                raise
            existing = _existing_snapshot(rds, cluster, name)  # made by an attempt racing this one
    made_from = existing.get("DBClusterIdentifier") or existing.get("DBInstanceIdentifier") or ""
    if made_from.lower() != source.lower():
        raise ApplicationError(
            f"snapshot {name} exists but was made from {made_from}, not {source}",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    return StepResult(changed=False, detail=_snapshot_detail(existing, kind, source))


# --- configuration ---


def _user_parameters(rds, group: str, cluster: bool) -> Any:
    """The parameters someone set in a custom group (Source=user); a default group has none by definition."""
    if group.startswith("default."):
        return {"default_group": True, "user_parameters": []}
    parameters, marker = [], None
    while True:
        arguments: dict[str, Any] = {"Source": "user", **({"Marker": marker} if marker else {})}
        if cluster:
            page = rds.describe_db_cluster_parameters(DBClusterParameterGroupName=group, **arguments)
        else:
            page = rds.describe_db_parameters(DBParameterGroupName=group, **arguments)
        keep = ("ParameterName", "ParameterValue", "ApplyType", "ApplyMethod", "DataType", "IsModifiable")
        parameters += [{k: p[k] for k in keep if k in p} for p in page.get("Parameters", [])]
        marker = page.get("Marker")
        if not marker:
            return {"default_group": False, "user_parameters": parameters}


@aws_activity(
    *DESCRIBE_ACTIONS,
    "rds:DescribeDBParameters",
    "rds:DescribeDBClusterParameters",
    "rds:DescribeDBSnapshots",
    "rds:DescribeDBClusterSnapshots",
    "ec2:DescribeSecurityGroups",
    *EVIDENCE_WRITE_ACTIONS,
)
def collect_db_instance_evidence(step: DbStepInput) -> EvidenceObject:
    """The configuration before containment and now (endpoint, security groups with their rules,
    parameter groups with the parameters set in them, subnet group, public accessibility, IAM database
    authentication, enhanced monitoring, log exports, tags), the incident's snapshot, and the database
    user the finding names. Each part is best effort: an error is written down instead."""
    rds, prior, target = rds_client(step.target), step.prior, step.target
    cluster_id = prior.cluster.identifier if prior.cluster else None
    ec2 = client("ec2", target.region, target.account_id)
    groups = sorted(set(prior.security_groups))
    name = snapshot_identifier(target.incident_id)
    document = {
        "collected_at": datetime.now(UTC).isoformat(),
        "incident_id": target.incident_id,
        "database_user": target.db_user or None,
        "db_instance": best_effort(lambda: describe_instance(rds, prior.db_instance_identifier)),
        "db_cluster": best_effort(lambda: describe_cluster(rds, cluster_id)) if cluster_id else None,
        "cluster_members": (
            best_effort(
                lambda: sorted(cluster_instances(rds, cluster_id).values(), key=lambda r: r["DBInstanceIdentifier"])
            )
            if cluster_id
            else None
        ),
        "parameter_groups": {
            g: best_effort(lambda g=g: _user_parameters(rds, g, False)) for g in prior.parameter_groups
        },
        "cluster_parameter_group": (
            {
                prior.cluster.parameter_group: best_effort(
                    lambda: _user_parameters(rds, prior.cluster.parameter_group, True)
                )
            }
            if prior.cluster and prior.cluster.parameter_group
            else None
        ),
        "security_groups": (
            best_effort(lambda: ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]) if groups else []
        ),
        "snapshot": best_effort(
            lambda: _snapshot_detail(
                _existing_snapshot(rds, cluster_id is not None, name) or {"Status": "not found"},
                "db-cluster-snapshot" if cluster_id else "db-snapshot",
                cluster_id or prior.db_instance_identifier,
            )
        ),
        "prior": prior.model_dump(mode="json"),
    }
    return store_evidence(
        target.incident_id,
        f"rds/{prior.db_instance_identifier}/configuration.json",
        to_json_bytes(document),
        "rds-instance",
    )
