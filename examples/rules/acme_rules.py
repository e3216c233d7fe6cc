"""Example team rules (a company called Acme): load them with IRFLOW_PYTHON_RULES_DIRS=examples/rules, test
them with `irflow rules test --rules examples/rules`. docs/rules.md walks through writing one.

The first rule carries its test events inline; the second keeps them in acme_rules.events.json beside this
file. Both ways work, in the same file too."""

from datetime import datetime

from irflow.detection.authoring import (
    SIGNIN_SERVICE,
    STS_SERVICE,
    Severity,
    caller_type,
    cloudtrail_event,
    fires_on,
    request_parameter,
    response_element,
    rule,
    stays_quiet_on,
    succeeded,
)

BREAK_GLASS_ROLES = ("break-glass", "BreakGlass")
BREAK_GLASS_ROLE = "arn:aws:iam::111111111111:role/break-glass-admin"


@rule(
    id="acme.sts.break-glass-assumed",
    title="Break-glass role assumed",
    severity=Severity.HIGH,
    finding_type="PrivilegeEscalation:IAMUser/BreakGlassRoleAssumed",
    sources={STS_SERVICE},
    names={"AssumeRole"},
    tests=[
        fires_on(
            "alice assumes the break-glass role",
            cloudtrail_event("AssumeRole", STS_SERVICE, request={"roleArn": BREAK_GLASS_ROLE}),
        ),
        stays_quiet_on(
            "a deploy role",
            cloudtrail_event("AssumeRole", STS_SERVICE, request={"roleArn": "arn:aws:iam::111111111111:role/deploy"}),
        ),
        stays_quiet_on(
            "denied attempt",
            cloudtrail_event("AssumeRole", STS_SERVICE, request={"roleArn": BREAK_GLASS_ROLE}, error="AccessDenied"),
        ),
    ],
)
def break_glass_assumed(event) -> bool:
    """Somebody assumed one of the emergency roles: every use must have a ticket behind it."""
    role_name = str(request_parameter(event, "roleArn") or "").rsplit("/", 1)[-1]
    return succeeded(event) and role_name.startswith(BREAK_GLASS_ROLES)


@rule(
    id="acme.signin.console-login-at-night",
    title="Console sign-in outside working hours (07:00-20:00 UTC, Monday to Friday)",
    severity=Severity.MEDIUM,
    finding_type="InitialAccess:IAMUser/ConsoleLoginOutsideHours",
    sources={SIGNIN_SERVICE},
    names={"ConsoleLogin"},
)
def console_login_at_night(event) -> bool:
    if response_element(event, "ConsoleLogin") != "Success" or caller_type(event) != "IAMUser":
        return False
    try:
        at = datetime.fromisoformat(event["eventTime"])
    except (KeyError, TypeError, ValueError):
        return False
    return at.weekday() >= 5 or not 7 <= at.hour < 20
