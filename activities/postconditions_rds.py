"""Postcondition checks of the RDS playbook's steps, each taking the step's own argument (DbStepInput). The
snapshot is evidence, not a change, and has no check.

A lone instance, an Aurora cluster or a member deleted since containment is gone, not drift: nothing is left to
re-apply the step to.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, client
from activities.postconditions_common import (
    QUARANTINE_READ_ACTIONS,
    Verdict,
    check_quarantine_group,
    check_read_only,
    is_gone,
)
from activities.rds import DESCRIBE_ACTIONS, _live, _live_groups, describe_cluster, describe_instance, rds_client
from irflow.models.postconditions import Postcondition
from irflow.models.rds import DbStepInput


def _what(step: DbStepInput) -> tuple[str, str]:
    """What the security groups are set on ("Aurora cluster", its identifier), or the lone DB instance."""
    if step.prior.cluster:
        return "Aurora cluster", step.prior.cluster.identifier
    return "DB instance", step.prior.db_instance_identifier


@aws_activity(*check_read_only(DESCRIBE_ACTIONS))
def check_disable_db_public_access(step: DbStepInput) -> Postcondition:
    """Every instance the step made private (each member, for Aurora) is not publicly accessible."""
    verdict = Verdict("disable_db_public_access")
    rds = rds_client(step.target)
    try:
        members, _ = _live(rds, step.prior)
    except ApplicationError as error:
        if not is_gone(error):
            raise
        kind, name = _what(step)
        verdict.vanished(f"{kind} {name} no longer exists", name)
        return verdict.result()
    for member, record in members:
        if record is None:
            verdict.vanished(f"DB instance {member.identifier} is no longer in the cluster", member.identifier)
        elif record.get("PubliclyAccessible"):
            status = record.get("DBInstanceStatus", "")
            busy = f" (it is {status}: a change may still be applying)" if status not in ("", "available") else ""
            verdict.drifted(
                f"DB instance {member.identifier} is publicly accessible{busy}", member.identifier, member.arn
            )
    return verdict.result()


@aws_activity(*check_read_only((*DESCRIBE_ACTIONS, *QUARANTINE_READ_ACTIONS)))
def check_quarantine_db_security_groups(step: DbStepInput) -> Postcondition:
    """The instance (the cluster, for Aurora) has the VPC's quarantine group and no other, and that group still
    allows nothing in and nothing out but HTTPS to the forensic egress."""
    verdict = Verdict("quarantine_db_security_groups")
    vpc_id = step.prior.vpc_id
    if not vpc_id:
        verdict.note("the instance is not in a VPC")
        return verdict.result()
    rds, (kind, name) = rds_client(step.target), _what(step)
    try:
        record = describe_cluster(rds, name) if step.prior.cluster else describe_instance(rds, name)
    except ApplicationError as error:
        if not is_gone(error):
            raise
        verdict.vanished(f"{kind} {name} no longer exists", name)
        return verdict.result()
    quarantine = check_quarantine_group(verdict, client("ec2", step.target.region, step.target.account_id), vpc_id)
    current = sorted(_live_groups(record))
    if quarantine is not None and current != [quarantine["GroupId"]]:
        verdict.drifted(
            f"{kind} {name} has security groups {', '.join(current) or 'none'}, not only the quarantine group "
            f"{quarantine['GroupId']}",
            name,
        )
    return verdict.result()
