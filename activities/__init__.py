"""Activities: the only code that calls AWS (or, in `incidents`, Temporal). Each one is one idempotent intent
and declares its IAM actions."""

from activities import (  # noqa: F401  (importing registers the activities)
    autoscaling,
    changes,
    ec2_containment,
    ec2_context,
    evidence,
    governor,
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
    postconditions,
    rds,
    rds_evidence,
    readiness,
    readiness_temporal,
    report,
    s3_bucket,
    sequences,
    snapshots,
    source_findings,
    tagging,
    triage,
)
from activities.aws import registered_activities

# Activities that act on Temporal (opening incidents, the governor) or check who signed a decision: none needs an
# IAM action of the worker's own, so none is in the @aws_activity registry.
UNDECLARED_ACTIVITIES = (
    incidents.open_instance_incidents,
    governor.reserve_automatic_containment,
    identity.verify_decision_proof,
    *readiness_temporal.UNDECLARED,
    *sequences.UNDECLARED,
)


def all_activities() -> list:
    """Every activity the worker registers, but the response policy (bound to the worker's settings)."""
    return [fn for fn, _ in registered_activities().values()] + list(UNDECLARED_ACTIVITIES)


def required_iam_actions() -> dict[str, tuple[str, ...]]:
    return {name: actions for name, (_, actions) in registered_activities().items()}
