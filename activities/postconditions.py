"""Containment that is verified, not assumed: one read-only check for every containment step that has an undo.

Each check takes the step's own argument and answers whether what the step did still holds now
(irflow.models.postconditions.Postcondition): drift says in words what someone undid and names the resources
CloudTrail knows (activities.changes asks it who). `POSTCONDITIONS` maps each step's activity name to its check.
The incident tags, every playbook's first step, are checked here; the other checks live in one module per
playbook (postconditions_ec2, _iam, _lambda, _rds, _s3), and what they share in postconditions_common.

A resource that no longer exists is not drift (there is nothing to re-apply the step to): it is listed in
`Postcondition.gone`, and the check holds.
"""

from __future__ import annotations

from collections.abc import Callable

from activities.autoscaling import detach_from_auto_scaling
from activities.aws import aws_activity, client, typed_aws_errors
from activities.ec2_containment import isolate_network, protect_instance
from activities.iam import replace_instance_profile, revoke_role_sessions
from activities.iam_role import revoke_iam_role_sessions
from activities.iam_user import deactivate_access_key, revoke_user_sessions
from activities.lambda_function import revoke_function_role_sessions, throttle_function
from activities.load_balancing import deregister_from_target_groups
from activities.postconditions_common import READ_ONLY_PREFIXES, Verdict, check_read_only
from activities.postconditions_ec2 import (
    check_deregister_from_target_groups,
    check_detach_from_auto_scaling,
    check_isolate_network,
    check_protect_instance,
    check_replace_instance_profile,
    check_revoke_role_sessions,
)
from activities.postconditions_iam import (
    check_deactivate_access_key,
    check_revoke_iam_role_sessions,
    check_revoke_user_sessions,
)
from activities.postconditions_lambda import check_revoke_function_role_sessions, check_throttle_function
from activities.postconditions_rds import check_disable_db_public_access, check_quarantine_db_security_groups
from activities.postconditions_s3 import check_block_bucket_public_access, check_remove_public_policy_statements
from activities.rds import disable_db_public_access, quarantine_db_security_groups
from activities.s3_bucket import block_bucket_public_access, remove_public_policy_statements
from activities.tagging import TAG_APIS, tag_resource
from irflow.models.postconditions import Postcondition
from irflow.models.tagging import TagRequest

# Each kind's tag reads (DescribeInstances, ListUserTags, GetBucketTagging...), never its writes.
_TAG_READS = tuple(
    sorted(
        {
            action
            for api in TAG_APIS.values()
            for action in api.iam_actions
            if action.split(":", 1)[1].startswith(READ_ONLY_PREFIXES)
        }
    )
)


@aws_activity(*check_read_only(_TAG_READS))
def check_tag_resource(request: TagRequest) -> Postcondition:
    """Every resource the step tagged still carries `irflow:incident-id` and `irflow:status=contained`."""
    verdict = Verdict("tag_resource")
    wanted = request.wanted
    for resource in request.resources:
        api = TAG_APIS[resource.kind]
        aws = client(api.service, request.region, request.account_id)
        with typed_aws_errors(f"read the tags of {resource.kind} {resource.shown}"):
            current = api.read(aws, resource.name)
        if current is None:
            verdict.vanished(f"{resource.kind} {resource.shown} no longer exists", resource.shown)
            continue
        wrong = [
            f"{key}={current[key]}" if key in current else f"no {key}"
            for key, value in wanted.items()
            if current.get(key) != value
        ]
        if wrong:
            expected = ", ".join(f"{key}={value}" for key, value in wanted.items())
            verdict.drifted(
                f"{resource.kind} {resource.shown} has {', '.join(wrong)} (containment tagged it {expected})",
                *dict.fromkeys([resource.shown, resource.name]),
            )
    return verdict.result()


# Each containment step's activity name → its check. Steps without an undo (a snapshot: evidence) have none.
POSTCONDITIONS: dict[str, Callable[..., Postcondition]] = {
    step.__name__: check
    for step, check in (
        (tag_resource, check_tag_resource),
        (protect_instance, check_protect_instance),
        (detach_from_auto_scaling, check_detach_from_auto_scaling),
        (deregister_from_target_groups, check_deregister_from_target_groups),
        (isolate_network, check_isolate_network),
        (replace_instance_profile, check_replace_instance_profile),
        (revoke_role_sessions, check_revoke_role_sessions),
        (deactivate_access_key, check_deactivate_access_key),
        (revoke_user_sessions, check_revoke_user_sessions),
        (revoke_iam_role_sessions, check_revoke_iam_role_sessions),
        (throttle_function, check_throttle_function),
        (revoke_function_role_sessions, check_revoke_function_role_sessions),
        (disable_db_public_access, check_disable_db_public_access),
        (quarantine_db_security_groups, check_quarantine_db_security_groups),
        (remove_public_policy_statements, check_remove_public_policy_statements),
        (block_bucket_public_access, check_block_bucket_public_access),
    )
}
