"""Activities: the only code that calls AWS (or, in `incidents`, Temporal). Each one is one idempotent intent
and declares its IAM actions."""

from activities import (  # noqa: F401  (importing registers the activities)
    autoscaling,
    ec2_containment,
    ec2_context,
    evidence,
    iam,
    iam_role,
    iam_user,
    identity,
    incidents,
    lambda_evidence,
    lambda_function,
    lambda_triggers,
    load_balancing,
    memory,
    notify,
    rds,
    rds_evidence,
    report,
    s3_bucket,
    snapshots,
    tagging,
    triage,
)
from activities.aws import registered_activities


def all_activities() -> list:
    return (
        [fn for fn, _ in registered_activities().values()]
        + list(incidents.TEMPORAL_ACTIVITIES)
        + list(identity.IDENTITY_ACTIVITIES)
    )


def required_iam_actions() -> dict[str, tuple[str, ...]]:
    return {name: actions for name, (_, actions) in registered_activities().items()}
