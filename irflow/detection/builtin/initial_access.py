"""Initial access (ATT&CK TA0001): console sign-ins (without MFA, not through SSO, failing) and any use of
the root user.

irflow's own rules, written like a team's (docs/rules.md); their test events are in initial_access.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    SIGNIN_SERVICE,
    Event,
    Severity,
    caller_type,
    event_field,
    made_by_aws_service,
    response_element,
    rule,
    succeeded,
)


def _iam_user_console_success(event: Event) -> bool:
    return caller_type(event) == "IAMUser" and response_element(event, "ConsoleLogin") == "Success"


@rule(
    id="irflow.signin.root-activity",
    title="Root user activity",
    severity=Severity.HIGH,
    finding_type="Policy:IAMUser/RootCredentialUsage",
    identity_types=["Root"],
)
def root_activity(event: Event) -> bool:
    """Root does something that changes state (console logins included; reads and service calls excluded)."""
    if caller_type(event) != "Root" or made_by_aws_service(event) or not succeeded(event):
        return False
    name = event.get("eventName") or ""
    if name == "ConsoleLogin":
        return response_element(event, "ConsoleLogin") == "Success"
    if event.get("readOnly") is True or name.startswith(("List", "Get", "Describe", "Head", "Lookup")):
        return False
    if name in ("CreateServiceLinkedRole", "ExternalIdPDirectoryLogin", "CheckMfa", "PasswordUpdated"):
        return False
    return event.get("eventType") in (None, "AwsApiCall", "AwsConsoleSignIn")


@rule(
    id="irflow.signin.root-login-failed",
    title="Failed root console login",
    severity=Severity.MEDIUM,
    finding_type="UnauthorizedAccess:IAMUser/RootLoginFailed",
    sources={SIGNIN_SERVICE},
    names={"ConsoleLogin"},
)
def root_login_failed(event: Event) -> bool:
    return caller_type(event) == "Root" and response_element(event, "ConsoleLogin") == "Failure"


@rule(
    id="irflow.signin.console-login-without-mfa",
    title="IAM user console login without MFA",
    severity=Severity.MEDIUM,
    finding_type="InitialAccess:IAMUser/ConsoleLoginWithoutMFA",
    sources={SIGNIN_SERVICE},
    names={"ConsoleLogin"},
)
def console_login_without_mfa(event: Event) -> bool:
    return _iam_user_console_success(event) and event_field(event, "additionalEventData.MFAUsed") == "No"


@rule(
    id="irflow.signin.console-login-iam-user",
    title="Console login by an IAM user (not through SSO/SAML)",
    severity=Severity.LOW,
    finding_type="InitialAccess:IAMUser/ConsoleLoginWithoutSAML",
    sources={SIGNIN_SERVICE},
    names={"ConsoleLogin"},
)
def console_login_iam_user(event: Event) -> bool:
    return _iam_user_console_success(event)


@rule(
    id="irflow.signin.mfa-failure",
    title="Console login failed at the MFA step",
    severity=Severity.LOW,
    finding_type="UnauthorizedAccess:IAMUser/MFAFailure",
    sources={SIGNIN_SERVICE},
    names={"ConsoleLogin"},
)
def mfa_failure(event: Event) -> bool:
    return (
        response_element(event, "ConsoleLogin") == "Failure"
        and event_field(event, "additionalEventData.MFAUsed") == "Yes"
    )
