"""Credential access (ATT&CK TA0006): reading secrets and Windows passwords, an RDS master password reset, and
AWS quarantining a key it found leaked.

irflow's own rules, written like a team's (docs/rules.md); their test events are in credential_access.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    EC2_SERVICE,
    IAM_SERVICE,
    RDS_SERVICE,
    SECRETS_MANAGER_SERVICE,
    Event,
    Severity,
    call_rule,
    made_by_aws_service,
    request_parameter,
    rule,
    succeeded,
)


@rule(
    id="irflow.iam.deny-all-quarantine",
    title="Compromised-key quarantine policy applied to an IAM user",
    severity=Severity.HIGH,
    finding_type="CredentialAccess:IAMUser/AccessKeyCompromised",
    sources={IAM_SERVICE},
    names={"AttachUserPolicy", "PutUserPolicy"},
)
def quarantine_policy(event: Event) -> bool:
    return succeeded(event) and (
        "AWSCompromisedKeyQuarantine" in str(request_parameter(event, "policyArn") or "")
        or str(request_parameter(event, "policyName") or "").startswith("AWSExposedCredentialPolicy")
    )


@rule(
    id="irflow.ec2.get-password-data",
    title="EC2 Windows password data requested",
    severity=Severity.MEDIUM,
    finding_type="CredentialAccess:IAMUser/EC2PasswordData",
    sources={EC2_SERVICE},
    names={"GetPasswordData"},
)
def get_password_data(event: Event) -> bool:
    return not made_by_aws_service(event)


call_rule(
    id="irflow.secretsmanager.batch-get",
    title="Secrets Manager batch secret retrieval",
    severity=Severity.MEDIUM,
    finding_type="CredentialAccess:IAMUser/SecretsBatchRetrieval",
    sources={SECRETS_MANAGER_SERVICE},
    names={"BatchGetSecretValue"},
    by_aws_services=False,
)


@rule(
    id="irflow.rds.master-password-changed",
    title="RDS master password changed",
    severity=Severity.MEDIUM,
    finding_type="CredentialAccess:RDS/MasterPasswordChanged",
    sources={RDS_SERVICE},
    names={"ModifyDBInstance", "ModifyDBCluster"},
)
def rds_master_password(event: Event) -> bool:
    return succeeded(event) and "masterUserPassword" in (event.get("requestParameters") or {})
