"""Pre-flight checks for findings a person hands in: does the resource they name exist?"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from activities.aws import client, error_code
from irflow.models.finding import Finding


def resource_problem(finding: Finding) -> str | None:
    """None when the resource exists; otherwise one line saying what is wrong."""
    instance_id = finding.resource.instance_id
    if finding.resource.resource_type != "Instance" or not instance_id:
        return None
    try:
        reservations = client("ec2", finding.region, finding.account_id).describe_instances(InstanceIds=[instance_id])[
            "Reservations"
        ]
    except ClientError as error:
        if error_code(error).startswith("InvalidInstanceID"):
            return f"instance {instance_id} does not exist in {finding.account_id}/{finding.region}"
        return f"cannot check instance {instance_id}: {error_code(error)}"
    except BotoCoreError as error:
        return f"cannot check instance {instance_id}: {error}"
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances:
        return f"instance {instance_id} does not exist in {finding.account_id}/{finding.region}"
    state = instances[0]["State"]["Name"]
    if state == "terminated":
        return f"instance {instance_id} is terminated; there is nothing to contain"
    return None
