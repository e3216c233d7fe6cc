"""Persistence (ATT&CK TA0003): new users, access keys and passwords for others, roles that trust outside
accounts, identity providers, backdoored Lambda functions.

irflow's own rules, written like a team's (docs/rules.md); their test events are in persistence.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    IAM_SERVICE,
    LAMBDA_SERVICE,
    RDS_SERVICE,
    SIGNIN_SERVICE,
    STS_SERVICE,
    Event,
    Severity,
    call_rule,
    caller_name,
    caller_type,
    event_account,
    made_by_aws_service,
    made_by_infrastructure_as_code,
    request_parameter,
    response_element,
    rule,
    succeeded,
    trusts_outside_account,
)


@rule(
    id="irflow.signin.root-password-changed",
    title="Root password changed",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/RootPasswordChanged",
    sources={SIGNIN_SERVICE},
    names={"PasswordUpdated"},
)
def root_password_changed(event: Event) -> bool:
    return caller_type(event) == "Root" and response_element(event, "PasswordUpdated") == "Success"


@rule(
    id="irflow.iam.user-created",
    title="IAM user created",
    severity=Severity.LOW,
    finding_type="Persistence:IAMUser/UserCreated",
    sources={IAM_SERVICE},
    names={"CreateUser"},
)
def user_created(event: Event) -> bool:
    return succeeded(event) and not made_by_infrastructure_as_code(event) and not made_by_aws_service(event)


@rule(
    id="irflow.iam.access-key-for-other-user",
    title="Access key created for another IAM user",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/BackdoorAccessKey",
    sources={IAM_SERVICE},
    names={"CreateAccessKey"},
)
def access_key_for_other_user(event: Event) -> bool:
    target = request_parameter(event, "userName")
    return succeeded(event) and bool(target) and target != caller_name(event)


@rule(
    id="irflow.iam.root-access-key-created",
    title="Root access key created",
    severity=Severity.CRITICAL,
    finding_type="Persistence:IAMUser/RootAccessKeyCreated",
    sources={IAM_SERVICE},
    names={"CreateAccessKey"},
)
def root_access_key(event: Event) -> bool:
    return succeeded(event) and caller_type(event) == "Root" and not request_parameter(event, "userName")


@rule(
    id="irflow.iam.login-profile-changed",
    title="Console password created or reset for another IAM user",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/LoginProfileChanged",
    sources={IAM_SERVICE},
    names={"CreateLoginProfile", "UpdateLoginProfile"},
)
def login_profile_changed(event: Event) -> bool:
    target = request_parameter(event, "userName")
    if not succeeded(event) or not target or target == caller_name(event) or made_by_infrastructure_as_code(event):
        return False
    return (
        event.get("eventName") == "CreateLoginProfile" or request_parameter(event, "passwordResetRequired") is not True
    )


@rule(
    id="irflow.iam.role-trust-opened",
    title="Role trust policy lets an outside or anonymous principal assume it",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/BackdoorRole",
    sources={IAM_SERVICE},
    names={"UpdateAssumeRolePolicy", "CreateRole"},
)
def role_trust_opened(event: Event) -> bool:
    document = request_parameter(event, "policyDocument") or request_parameter(event, "assumeRolePolicyDocument")
    return succeeded(event) and trusts_outside_account(document, event_account(event))


@rule(
    id="irflow.iam.saml-provider-changed",
    title="SAML identity provider created, updated or deleted",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/SAMLProviderChanged",
    sources={IAM_SERVICE},
    names={"CreateSAMLProvider", "UpdateSAMLProvider", "DeleteSAMLProvider"},
)
def saml_provider_changed(event: Event) -> bool:
    """IAM Identity Center manages its own AWSSSO_ providers; those are not suspicious."""
    provider = str(request_parameter(event, "name") or "")
    by_identity_center = "sso.amazonaws.com" in (event.get("userAgent") or "") or provider.startswith("AWSSSO_")
    return succeeded(event) and not by_identity_center


call_rule(
    id="irflow.rolesanywhere.trust-anchor-created",
    title="IAM Roles Anywhere trust anchor or profile created",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/RolesAnywhereTrustAnchor",
    sources={"rolesanywhere.amazonaws.com"},
    names={"CreateTrustAnchor", "CreateProfile"},
)


@rule(
    id="irflow.sts.federation-token",
    title="Federation token requested by an IAM user",
    severity=Severity.LOW,
    finding_type="Persistence:IAMUser/FederationToken",
    sources={STS_SERVICE},
    names={"GetFederationToken"},
)
def federation_token(event: Event) -> bool:
    return succeeded(event) and caller_type(event) == "IAMUser"


@rule(
    id="irflow.lambda.code-or-layers-changed",
    title="Lambda function code or layers changed",
    severity=Severity.MEDIUM,
    finding_type="Persistence:Lambda/FunctionModified",
    sources={LAMBDA_SERVICE},
    names={
        "UpdateFunctionCode20150331v2",
        "UpdateFunctionCode20150331",
        "UpdateFunctionConfiguration20150331v2",
        "UpdateFunctionConfiguration20150331",
        "PublishLayerVersion20181031",
        "AddLayerVersionPermission20181031",
    },
)
def lambda_changed(event: Event) -> bool:
    """Programmatic changes only (backdoors are scripted; console edits are made by a person at the keyboard)."""
    if not succeeded(event) or made_by_aws_service(event) or "console.amazonaws.com" in (event.get("userAgent") or ""):
        return False
    if event.get("eventName", "").startswith("UpdateFunctionConfiguration"):
        return bool(request_parameter(event, "layers") or response_element(event, "layers"))
    return True


call_rule(
    id="irflow.lambda.permission-added",
    title="Lambda function resource policy grants invoke permission",
    severity=Severity.MEDIUM,
    finding_type="Persistence:Lambda/BackdoorFunction",
    sources={LAMBDA_SERVICE},
    names={"AddPermission20150331", "AddPermission20150331v2"},
    by_aws_services=False,
)


call_rule(
    id="irflow.rds.iam-role-added",
    title="IAM role attached to an RDS instance or cluster",
    severity=Severity.LOW,
    finding_type="Persistence:RDS/IAMRoleAdded",
    sources={RDS_SERVICE},
    names={"AddRoleToDBInstance", "AddRoleToDBCluster"},
)
