"""RDS DB instances (and their Aurora clusters): context, containment (make private, quarantine the network)
and, after approval, stop. The snapshot and the configuration evidence are `rds_evidence`'s.

Every step looks at the current state before acting and changes nothing twice; every undo restores
the state captured during detection & analysis. For an instance in an Aurora cluster the unit of
containment is the cluster: each member instance is made private (public access is set per instance),
the cluster's security groups are replaced (RDS sets them on the cluster, not on its members) and the
whole cluster is stopped.

RDS applies changes asynchronously and refuses a new one (InvalidDBInstanceState) while the instance is
busy (modifying, backing-up...). Steps then wait, heartbeating, for as long as their patience allows;
a refusal RDS will keep making (a stopped instance, a broken one) fails the step at once, typed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import (
    INVALID_REQUEST,
    aws_activity,
    client,
    error_code,
    error_message,
    heartbeat,
    not_found,
    tag_pairs,
    typed_aws_errors,
)
from activities.ec2_containment import ISOLATION_GROUP_ACTIONS, isolation_groups
from irflow.models.incident import StepResult
from irflow.models.rds import DbClusterContext, DbInstanceContext, DbInstanceMember, DbStepInput, DbTarget

# RDS's "not now" answers: the instance or cluster is busy with something else.
_BUSY = {"InvalidDBInstanceState", "InvalidDBInstanceStateFault", "InvalidDBClusterStateFault"}
# States in which RDS keeps refusing changes, however long one waits.
_REFUSING = {
    "stopped",
    "stopping",
    "failed",
    "deleting",
    "storage-full",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "insufficient-capacity",
    "restore-error",
}
# Security groups on their way out of an instance or cluster are no longer its groups.
_LEAVING = {"removing", "inactive"}
POLL_SECONDS = 10.0
CONTAIN_PATIENCE_SECONDS = 15 * 60  # containment steps run with a long timeout and heartbeats
UNDO_PATIENCE_SECONDS = 60  # undos have a short timeout and are retried by Temporal for long
STOP_WAIT_SECONDS = 20 * 60

DESCRIBE_ACTIONS = ("rds:DescribeDBInstances", "rds:DescribeDBClusters")


def rds_client(target: DbTarget):
    return client("rds", target.region, target.account_id)


def _live_groups(record: dict) -> list[str]:
    return [g["VpcSecurityGroupId"] for g in record.get("VpcSecurityGroups", []) if g.get("Status") not in _LEAVING]


def describe_instance(rds, identifier: str) -> dict:
    if not identifier:
        raise ApplicationError("the finding names no DB instance", type=INVALID_REQUEST, non_retryable=True)
    with typed_aws_errors(f"describe DB instance {identifier}"):
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    wanted = identifier.lower()
    for record in found:
        if wanted in (record["DBInstanceIdentifier"].lower(), record.get("DBInstanceArn", "").lower()):
            return record
    raise not_found(f"DB instance {identifier} does not exist")


def describe_cluster(rds, identifier: str) -> dict:
    with typed_aws_errors(f"describe DB cluster {identifier}"):
        found = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
    if not found:
        raise not_found(f"DB cluster {identifier} does not exist")
    return found[0]


def cluster_instances(rds, cluster_id: str) -> dict[str, dict]:
    with typed_aws_errors(f"list the instances of DB cluster {cluster_id}"):
        records = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [cluster_id]}])["DBInstances"]
    return {r["DBInstanceIdentifier"]: r for r in records}


def when_ready(
    act: Callable[[], Any],
    status: Callable[[], str],
    doing: str,
    patience: float,
    refusing: set[str] = _REFUSING,
) -> Any:
    """Call `act`; while RDS answers that the resource is busy, wait (heartbeating) and call again."""
    deadline = time.monotonic() + patience
    refused_while_available = 0
    while True:
        try:
            with typed_aws_errors(doing):
                return act()
        except ClientError as error:
            if error_code(error) not in _BUSY:
                raise
            message = error_message(error) or str(error)
            now = status()
            refused_while_available += now == "available"
            # "available" and refused: a change that just finished (try again soon), or a refusal for
            # good (a source with read replicas cannot be stopped): a few tries tell them apart.
            if now in refusing or refused_while_available > 2:
                raise ApplicationError(
                    f"{doing}: RDS refuses while the resource is {now}: {message}",
                    type=INVALID_REQUEST,
                    non_retryable=True,
                ) from error
            if time.monotonic() >= deadline:
                raise ApplicationError(f"{doing}: still {now} after {patience:.0f}s", type="DbBusy") from error
            heartbeat(f"{doing}: waiting, {now}")
            time.sleep(POLL_SECONDS / 10 if now == "available" else POLL_SECONDS)


# --- detection & analysis ---


def _member(record: dict, writers: dict[str, bool]) -> DbInstanceMember:
    return DbInstanceMember(
        identifier=record["DBInstanceIdentifier"],
        arn=record["DBInstanceArn"],
        status=record.get("DBInstanceStatus", ""),
        publicly_accessible=bool(record.get("PubliclyAccessible")),
        tags=tag_pairs(record.get("TagList")),
        is_cluster_writer=writers.get(record["DBInstanceIdentifier"]),
    )


@aws_activity(*DESCRIBE_ACTIONS)
def describe_db_instance_context(target: DbTarget) -> DbInstanceContext:
    """The instance (and its Aurora cluster) as RDS describes it, before anything changes."""
    rds = rds_client(target)
    record = describe_instance(rds, target.db_instance_identifier)
    cluster, members = None, [record]
    cluster_id = record.get("DBClusterIdentifier")
    if cluster_id:
        found = describe_cluster(rds, cluster_id)
        writers = {m["DBInstanceIdentifier"]: bool(m.get("IsClusterWriter")) for m in found.get("DBClusterMembers", [])}
        by_id = cluster_instances(rds, cluster_id)
        by_id.setdefault(record["DBInstanceIdentifier"], record)
        members = [by_id[name] for name in sorted(by_id)]
        cluster = DbClusterContext(
            identifier=found["DBClusterIdentifier"],
            arn=found["DBClusterArn"],
            engine=found.get("Engine", ""),
            status=found.get("Status", ""),
            endpoint=found.get("Endpoint"),
            reader_endpoint=found.get("ReaderEndpoint"),
            vpc_security_group_ids=_live_groups(found),
            parameter_group=found.get("DBClusterParameterGroup"),
            iam_database_authentication=bool(found.get("IAMDatabaseAuthenticationEnabled")),
            deletion_protection=bool(found.get("DeletionProtection")),
            tags=tag_pairs(found.get("TagList")),
            members=sorted(writers),
        )
    else:
        writers = {}
    endpoint = record.get("Endpoint") or {}
    return DbInstanceContext(
        db_instance_identifier=record["DBInstanceIdentifier"],
        db_instance_arn=record["DBInstanceArn"],
        engine=record.get("Engine", ""),
        engine_version=record.get("EngineVersion"),
        instance_class=record.get("DBInstanceClass"),
        status=record.get("DBInstanceStatus", ""),
        publicly_accessible=bool(record.get("PubliclyAccessible")),
        endpoint_address=endpoint.get("Address"),
        endpoint_port=endpoint.get("Port"),
        vpc_id=(record.get("DBSubnetGroup") or {}).get("VpcId"),
        vpc_security_group_ids=_live_groups(record),
        db_subnet_group=(record.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
        parameter_groups=[g["DBParameterGroupName"] for g in record.get("DBParameterGroups", [])],
        option_groups=[g["OptionGroupName"] for g in record.get("OptionGroupMemberships", [])],
        iam_database_authentication=bool(record.get("IAMDatabaseAuthenticationEnabled")),
        monitoring_interval=int(record.get("MonitoringInterval") or 0),
        monitoring_role_arn=record.get("MonitoringRoleArn"),
        log_exports=list(record.get("EnabledCloudwatchLogsExports", [])),
        deletion_protection=bool(record.get("DeletionProtection")),
        multi_az=bool(record.get("MultiAZ")),
        storage_encrypted=bool(record.get("StorageEncrypted")),
        read_replicas=list(record.get("ReadReplicaDBInstanceIdentifiers", [])),
        replica_source=record.get("ReadReplicaSourceDBInstanceIdentifier"),
        tags=tag_pairs(record.get("TagList")),
        cluster=cluster,
        instances=[_member(m, writers) for m in members],
        captured_at=datetime.now(UTC),
    )


def _live(rds, prior: DbInstanceContext) -> tuple[list[tuple[DbInstanceMember, dict | None]], dict | None]:
    """Each instance of the prior state with its record now (None: a cluster member deleted since, e.g.
    by Aurora auto scaling), and the cluster's record now. A lone instance or a cluster that is gone
    raises NOT_FOUND."""
    if prior.cluster is None:
        return [(m, describe_instance(rds, m.identifier)) for m in prior.instances], None
    cluster = describe_cluster(rds, prior.cluster.identifier)
    now = cluster_instances(rds, prior.cluster.identifier)
    return [(m, now.get(m.identifier)) for m in prior.instances], cluster


# --- public accessibility ---


def _set_public(step: DbStepInput, wanted: Callable[[DbInstanceMember], bool], patience: float) -> StepResult:
    rds = rds_client(step.target)
    members, _ = _live(rds, step.prior)
    changed, unchanged, gone = {}, [], []
    for member, record in members:
        if record is None:
            gone.append(member.identifier)
            continue
        value = wanted(member)
        if bool(record.get("PubliclyAccessible")) == value:
            unchanged.append(member.identifier)
            continue
        when_ready(
            lambda m=member, v=value: rds.modify_db_instance(
                DBInstanceIdentifier=m.identifier, PubliclyAccessible=v, ApplyImmediately=True
            ),
            lambda m=member: describe_instance(rds, m.identifier).get("DBInstanceStatus", ""),
            f"set PubliclyAccessible={value} on {member.identifier}",
            patience,
        )
        changed[member.identifier] = value
    return StepResult(
        changed=bool(changed), detail={"publicly_accessible": changed, "unchanged": unchanged, "gone": gone}
    )


@aws_activity(*DESCRIBE_ACTIONS, "rds:ModifyDBInstance")
def disable_db_public_access(step: DbStepInput) -> StepResult:
    """PubliclyAccessible off, applied immediately: the endpoint resolves to private addresses only and
    the instance can no longer be reached from the internet (for Aurora: every member)."""
    return _set_public(step, lambda _: False, CONTAIN_PATIENCE_SECONDS)


@aws_activity(*DESCRIBE_ACTIONS, "rds:ModifyDBInstance")
def restore_db_public_access(step: DbStepInput) -> StepResult:
    return _set_public(step, lambda m: m.publicly_accessible, UNDO_PATIENCE_SECONDS)


# --- network quarantine ---


def _set_groups(step: DbStepInput, wanted: list[str], patience: float) -> StepResult:
    rds, prior = rds_client(step.target), step.prior
    if prior.cluster:
        name = prior.cluster.identifier
        current = _live_groups(describe_cluster(rds, name))
        act = lambda: rds.modify_db_cluster(  # noqa: E731
            DBClusterIdentifier=name, VpcSecurityGroupIds=wanted, ApplyImmediately=True
        )
        status = lambda: describe_cluster(rds, name).get("Status", "")  # noqa: E731
    else:
        name = prior.db_instance_identifier
        current = _live_groups(describe_instance(rds, name))
        act = lambda: rds.modify_db_instance(  # noqa: E731
            DBInstanceIdentifier=name, VpcSecurityGroupIds=wanted, ApplyImmediately=True
        )
        status = lambda: describe_instance(rds, name).get("DBInstanceStatus", "")  # noqa: E731
    if sorted(current) == sorted(wanted):
        return StepResult(changed=False, detail={"resource": name, "security_groups": current})
    when_ready(act, status, f"set the security groups of {name} to {wanted}", patience)
    return StepResult(changed=True, detail={"resource": name, "security_groups": wanted, "replaced": current})


@aws_activity(*DESCRIBE_ACTIONS, "rds:ModifyDBInstance", "rds:ModifyDBCluster", *ISOLATION_GROUP_ACTIONS)
def quarantine_db_security_groups(step: DbStepInput) -> StepResult:
    """Replace the security groups (the cluster's, for Aurora) with the VPC's quarantine group, which lets
    nothing in (and out only HTTPS to the VPC endpoints of IRFLOW_FORENSIC_EGRESS, when set: the group is the
    EC2 instances' too): no new connection from anywhere, the application's included. Connections already open
    are tracked and survive the change; stopping the instance (eradication) ends them."""
    if not step.prior.vpc_id:
        return StepResult(changed=False, detail={"reason": "the instance is not in a VPC"})
    # The EC2 playbook's helper: it reads only the target's region and account (the member account).
    quarantine = isolation_groups(step.target, step.prior.vpc_id).quarantine
    result = _set_groups(step, [quarantine], CONTAIN_PATIENCE_SECONDS)
    return result.model_copy(update={"detail": {**result.detail, "quarantine_group": quarantine}})


@aws_activity(*DESCRIBE_ACTIONS, "rds:ModifyDBInstance", "rds:ModifyDBCluster")
def restore_db_security_groups(step: DbStepInput) -> StepResult:
    if not step.prior.vpc_id or not step.prior.security_groups:
        return StepResult(changed=False, detail={"reason": "no security groups were recorded"})
    return _set_groups(step, step.prior.security_groups, UNDO_PATIENCE_SECONDS)


# --- eradication ---


@aws_activity(*DESCRIBE_ACTIONS, "rds:StopDBInstance", "rds:StopDBCluster")
def stop_db_instance(step: DbStepInput) -> StepResult:
    """Stop the instance (the whole cluster, for Aurora): every open session ends, the storage and the
    snapshot stay. RDS starts a stopped database again by itself after seven days; it comes back still
    private and quarantined. RDS refuses to stop some (a source of read replicas, for one): the step
    fails, typed, and the database stays contained and running."""
    rds, prior = rds_client(step.target), step.prior
    if prior.cluster:
        name = prior.cluster.identifier
        status = lambda: describe_cluster(rds, name).get("Status", "")  # noqa: E731
        act = lambda: rds.stop_db_cluster(DBClusterIdentifier=name)  # noqa: E731
    else:
        name = prior.db_instance_identifier
        status = lambda: describe_instance(rds, name).get("DBInstanceStatus", "")  # noqa: E731
        act = lambda: rds.stop_db_instance(DBInstanceIdentifier=name)  # noqa: E731
    before = status()
    if before in ("stopped", "stopping"):
        return StepResult(changed=False, detail={"resource": name, "status": before})
    when_ready(act, status, f"stop {name}", STOP_WAIT_SECONDS, refusing=_REFUSING | {"available"})
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    now = status()
    while now != "stopped" and time.monotonic() < deadline:
        heartbeat(f"stopping {name}: {now}")
        time.sleep(POLL_SECONDS)
        now = status()
    return StepResult(changed=True, detail={"resource": name, "status": now})
