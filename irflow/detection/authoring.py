"""What a Python rule file imports: the `rule` decorator, test constructors and helpers for reading CloudTrail.

    from irflow.detection.authoring import STS_SERVICE, Severity, fires_on, request_parameter, rule, succeeded

irflow's own rules (`irflow/detection/builtin/`) use nothing else. docs/rules.md walks through a rule file
and its tests.

Every helper takes a CloudTrail record as CloudTrail writes it (a dict) and is safe on the shapes CloudTrail
really produces: `requestParameters` and `responseElements` are often null, a single item often comes where a
list would be, policy documents come as JSON text or as objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from irflow.detection.events import get_path
from irflow.detection.rule_files import PythonRule, rule
from irflow.detection.rule_tests import RuleTest, fires_on, stays_quiet_on
from irflow.detection.rules import Event
from irflow.models.finding import Severity

__all__ = [
    "ACCOUNT_SERVICE",
    "BEDROCK_SERVICE",
    "CLOUDTRAIL_SERVICE",
    "EC2_SERVICE",
    "GUARDDUTY_SERVICE",
    "IAM_SERVICE",
    "KMS_SERVICE",
    "LAMBDA_SERVICE",
    "RDS_SERVICE",
    "S3_SERVICE",
    "SECRETS_MANAGER_SERVICE",
    "SIGNIN_SERVICE",
    "SSM_SERVICE",
    "STS_SERVICE",
    "Event",
    "RuleTest",
    "Severity",
    "allows_everyone",
    "as_list",
    "call_rule",
    "caller_name",
    "caller_type",
    "cloudtrail_event",
    "event_account",
    "event_field",
    "fires_on",
    "made_by_aws_service",
    "made_by_infrastructure_as_code",
    "policy_statements",
    "request_parameter",
    "response_element",
    "rule",
    "statement_principals",
    "stays_quiet_on",
    "succeeded",
    "trusts_outside_account",
]

# The eventSource of the services irflow's own rules watch most (any other is its "<service>.amazonaws.com").
ACCOUNT_SERVICE = "account.amazonaws.com"
BEDROCK_SERVICE = "bedrock.amazonaws.com"
CLOUDTRAIL_SERVICE = "cloudtrail.amazonaws.com"
EC2_SERVICE = "ec2.amazonaws.com"
GUARDDUTY_SERVICE = "guardduty.amazonaws.com"
IAM_SERVICE = "iam.amazonaws.com"
KMS_SERVICE = "kms.amazonaws.com"
LAMBDA_SERVICE = "lambda.amazonaws.com"
RDS_SERVICE = "rds.amazonaws.com"
S3_SERVICE = "s3.amazonaws.com"
SECRETS_MANAGER_SERVICE = "secretsmanager.amazonaws.com"
SIGNIN_SERVICE = "signin.amazonaws.com"  # console sign-in: ConsoleLogin, PasswordUpdated, CheckMfa
SSM_SERVICE = "ssm.amazonaws.com"
STS_SERVICE = "sts.amazonaws.com"


# ---------------------------------------------------------------------------------------------------------
# reading the event


def succeeded(event: Event) -> bool:
    """The call succeeded: the record has no errorCode."""
    return not event.get("errorCode")


def request_parameter(event: Event, name: str, default: Any = None) -> Any:
    """`requestParameters[name]`, or `default` when it is missing or requestParameters is null."""
    parameters = event.get("requestParameters")
    if isinstance(parameters, dict):
        return parameters.get(name, default)
    return default


def response_element(event: Event, name: str, default: Any = None) -> Any:
    """`responseElements[name]`, or `default` when it is missing or responseElements is null."""
    elements = event.get("responseElements")
    if isinstance(elements, dict):
        return elements.get(name, default)
    return default


def event_field(event: Event, dotted_path: str) -> Any:
    """Any field by its dotted path (`"additionalEventData.MFAUsed"`), or None when a step is missing."""
    return get_path(event, dotted_path)


def _caller(event: Event) -> dict[str, Any]:
    identity = event.get("userIdentity")
    return identity if isinstance(identity, dict) else {}


def caller_type(event: Event) -> str | None:
    """`userIdentity.type`: "IAMUser", "AssumedRole", "Root", "AWSService", "FederatedUser"..."""
    return _caller(event).get("type")


def caller_name(event: Event) -> str | None:
    """The IAM user name, else the last part of the caller's ARN (a role session's name), else None."""
    caller = _caller(event)
    if caller.get("userName"):
        return caller["userName"]
    arn = caller.get("arn") or ""
    return arn.rsplit("/", 1)[-1] if "/" in arn else None


def event_account(event: Event) -> str | None:
    """The account the event was recorded in (recipientAccountId, else the caller's account)."""
    return event.get("recipientAccountId") or _caller(event).get("accountId")


def made_by_aws_service(event: Event) -> bool:
    """An AWS service made the call on your behalf (CloudFormation, Auto Scaling, a service event...)."""
    caller = _caller(event)
    return (
        caller.get("type") == "AWSService"
        or bool(caller.get("invokedBy"))
        or event.get("eventType") == "AwsServiceEvent"
    )


_IAC_USER_AGENTS = ("terraform", "cloudformation", "pulumi", "aws-cdk")


def made_by_infrastructure_as_code(event: Event) -> bool:
    """Terraform, CloudFormation, Pulumi or the CDK made the call (by its user agent): expected change traffic
    for noisy change rules. A spoofed user agent evades only the rules that use this; keep it out of rules
    about logging, exposure and credentials."""
    agent = (event.get("userAgent") or "").lower()
    return any(tool in agent for tool in _IAC_USER_AGENTS)


def call_rule(
    *,
    id: str,  # noqa: A002 - the same word as in @rule
    title: str,
    severity: Severity,
    finding_type: str,
    sources: Iterable[str],
    names: Iterable[str],
    by_aws_services: bool = True,
    description: str = "",
    tests: Iterable[RuleTest] = (),
    references: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> PythonRule:
    """A rule that needs no function: it fires on every successful call of `names` to `sources`, and, with
    `by_aws_services=False`, not on those an AWS service makes on the account's behalf. Declared like `@rule`,
    its test events too; the file that calls it declares it."""

    def successful_call(event: Event) -> bool:
        return succeeded(event) and (by_aws_services or not made_by_aws_service(event))

    successful_call.__name__ = id.rsplit(".", 1)[-1].replace("-", "_")
    declared = rule(
        id=id,
        title=title,
        severity=severity,
        finding_type=finding_type,
        sources=sources,
        names=names,
        tests=tests,
        description=description,
        references=references,
        tags=tags,
    )(successful_call)
    return declared.rule  # type: ignore[attr-defined]


def as_list(value: Any) -> list[Any]:
    """CloudTrail writes one item where there could be several: None → [], a list as is, else [value]."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------------------------
# policy documents (IAM, bucket, key, queue and topic policies)


def policy_statements(policy: Any) -> list[dict[str, Any]]:
    """The statements of a policy given as JSON text or as an object; [] when it is neither."""
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return []
    if not isinstance(policy, dict):
        return []
    found = policy.get("Statement", [])
    if isinstance(found, dict):
        found = [found]
    return [s for s in found if isinstance(s, dict)]


def statement_principals(statement: Mapping[str, Any]) -> list[str]:
    """Every principal a statement names ("*", account ids, ARNs, service names), whatever its shape."""
    value = statement.get("Principal")
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(p) for v in value.values() for p in as_list(v)]
    return []


def allows_everyone(statement: Mapping[str, Any]) -> bool:
    """The statement allows "*" with no condition narrowing it."""
    return (
        statement.get("Effect") == "Allow" and "*" in statement_principals(statement) and not statement.get("Condition")
    )


def trusts_outside_account(policy: Any, account: str | None) -> bool:
    """An Allow statement names "*" or an AWS principal in an account other than `account`."""
    for statement in policy_statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        for principal in statement_principals(statement):
            if principal == "*":
                return True
            if principal.startswith("arn:aws:iam::") or principal.isdigit():
                owner = principal.split(":")[4] if principal.startswith("arn:") else principal
                if account and owner != account:
                    return True
    return False


# ---------------------------------------------------------------------------------------------------------
# test events


def cloudtrail_event(
    name: str,
    source: str,
    *,
    error: str | None = None,
    request: Mapping[str, Any] | None = None,
    response: Mapping[str, Any] | None = None,
    identity_type: str = "IAMUser",
    user_name: str = "alice",
    **fields: Any,
) -> dict[str, Any]:
    """A realistic CloudTrail record for a rule's tests: `name` (eventName) called on `source` (eventSource) in
    account 111111111111 by IAM user alice (or the root user, with identity_type="Root"). `error` is its
    errorCode, `request` and `response` its requestParameters and responseElements; any other CloudTrail
    field is given by its own name (`userAgent="Terraform/1.9"`, `eventTime="2024-06-01T03:12:00Z"`)."""
    is_user = identity_type == "IAMUser"
    event: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": "2024-01-01T00:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": identity_type,
            "arn": f"arn:aws:iam::111111111111:user/{user_name}" if is_user else "arn:aws:iam::111111111111:root",
            "accountId": "111111111111",
            "userName": user_name,
        },
        "requestParameters": dict(request) if request is not None else None,
        "responseElements": dict(response) if response is not None else None,
        "recipientAccountId": "111111111111",
        "eventType": "AwsApiCall",
    }
    if error:
        event["errorCode"] = error
    event.update(fields)
    return event
