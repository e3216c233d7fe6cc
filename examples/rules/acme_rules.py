"""Example team rules (a company called Acme): load them with IRFLOW_PYTHON_RULES_DIRS=examples/rules, test
them with `irflow rules test --rules examples/rules`. docs/rules.md walks through writing one."""

from datetime import datetime

from irflow.detection.python_rules import SIGNIN, STS, T, ev, identity, ok, req, rule
from irflow.models.finding import Severity

BREAK_GLASS_ROLES = ("break-glass", "BreakGlass")


@rule(
    id="acme.sts.break-glass-assumed",
    title="Break-glass role assumed",
    severity=Severity.HIGH,
    finding_type="PrivilegeEscalation:IAMUser/BreakGlassRoleAssumed",
    sources={STS},
    names={"AssumeRole"},
    tests=[
        T(
            "alice assumes the break-glass role",
            ev("AssumeRole", STS, request={"roleArn": "arn:aws:iam::111111111111:role/break-glass-admin"}),
            True,
        ),
        T(
            "a deploy role",
            ev("AssumeRole", STS, request={"roleArn": "arn:aws:iam::111111111111:role/deploy"}),
            False,
        ),
        T(
            "denied attempt",
            ev(
                "AssumeRole",
                STS,
                request={"roleArn": "arn:aws:iam::111111111111:role/break-glass-admin"},
                error="AccessDenied",
            ),
            False,
        ),
    ],
)
def break_glass_assumed(event) -> bool:
    """Somebody assumed one of the emergency roles: every use must have a ticket behind it."""
    role_name = str(req(event, "roleArn") or "").rsplit("/", 1)[-1]
    return ok(event) and role_name.startswith(BREAK_GLASS_ROLES)


@rule(
    id="acme.signin.console-login-at-night",
    title="Console sign-in outside working hours (07:00-20:00 UTC, Monday to Friday)",
    severity=Severity.MEDIUM,
    finding_type="InitialAccess:IAMUser/ConsoleLoginOutsideHours",
    sources={SIGNIN},
    names={"ConsoleLogin"},
    tests=[
        T(
            "Saturday 03:12",
            ev("ConsoleLogin", SIGNIN, eventTime="2024-06-01T03:12:00Z", response={"ConsoleLogin": "Success"}),
            True,
        ),
        T(
            "Tuesday 10:00",
            ev("ConsoleLogin", SIGNIN, eventTime="2024-06-04T10:00:00Z", response={"ConsoleLogin": "Success"}),
            False,
        ),
        T(
            "failed login at night",
            ev("ConsoleLogin", SIGNIN, eventTime="2024-06-01T03:12:00Z", response={"ConsoleLogin": "Failure"}),
            False,
        ),
        T(
            "root is another rule's business",
            ev(
                "ConsoleLogin",
                SIGNIN,
                user_type="Root",
                eventTime="2024-06-01T03:12:00Z",
                response={"ConsoleLogin": "Success"},
            ),
            False,
        ),
    ],
)
def console_login_at_night(event) -> bool:
    if (event.get("responseElements") or {}).get("ConsoleLogin") != "Success":
        return False
    if identity(event).get("type") != "IAMUser":
        return False
    try:
        at = datetime.fromisoformat(event["eventTime"])
    except (KeyError, TypeError, ValueError):
        return False
    return at.weekday() >= 5 or not 7 <= at.hour < 20
