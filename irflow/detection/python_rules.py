"""Detection-as-code: one small decorator-registered Python function per rule, each with its own test events,
for logic Sigma cannot say. Rules declare the event sources and names they can match, so the engine only
calls them for those events.

    @rule(id="irflow.cloudtrail.x", title=..., severity=Severity.HIGH, finding_type="...",
          sources={"cloudtrail.amazonaws.com"}, names={"StopLogging"}, tests=[RuleTest(...)])
    def x(event) -> bool: ...

A team's own rules live in their own folders of `*.py` files written the same way
(`IRFLOW_PYTHON_RULES_DIRS`, `load_rule_files`); docs/rules.md says how to write one and its tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irflow.detection.rules import Event, Rule, Unsupported
from irflow.models.finding import Severity

Predicate = Callable[[Event], bool]


@dataclass(frozen=True)
class RuleTest:
    """An event and the verdict the rule must give on it."""

    name: str
    event: Mapping[str, Any]
    expected: bool


@dataclass
class PythonRule(Rule):
    predicate: Predicate | None = None
    tests: tuple[RuleTest, ...] = ()

    def matches(self, event: Event) -> bool:
        # Through the engine the index has narrowed the event already; a direct call checks it here.
        return self.admits_event(event) and bool(self.predicate(event))  # type: ignore[misc]

    def indexed_test(self) -> Predicate | None:
        return self.predicate


@dataclass(frozen=True)
class RuleTestFailure:
    rule_id: str
    test: str
    expected: bool
    got: bool | str

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.test}: expected {self.expected}, got {self.got}"


_REGISTRY: dict[str, PythonRule] = {}  # irflow's own rules, registered when this module is imported
_TARGETS: list[dict[str, PythonRule]] = [_REGISTRY]  # where @rule registers (a rule file being loaded: its own)


def rule(
    *,
    id: str,  # noqa: A002 - reads naturally in the decorator
    title: str,
    severity: Severity,
    finding_type: str,
    sources: Iterable[str] = (),
    names: Iterable[str] = (),
    name_prefixes: Iterable[str] = (),
    identity_types: Iterable[str] = (),
    tests: Iterable[RuleTest] = (),
    description: str = "",
    references: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> Callable[[Predicate], Predicate]:
    def register(func: Predicate) -> Predicate:
        target = _TARGETS[-1]
        if id in target:
            raise ValueError(f"duplicate rule id {id}")
        target[id] = PythonRule(
            rule_id=id,
            title=title,
            severity=severity,
            finding_type=finding_type,
            event_sources=frozenset(sources),
            event_names=frozenset(names),
            name_prefixes=tuple(name_prefixes),
            identity_types=frozenset(identity_types),
            description=description or (func.__doc__ or "").strip(),
            kind="python",
            references=tuple(references),
            tags=tuple(tags),
            predicate=func,
            tests=tuple(tests),
        )
        func.rule = target[id]  # type: ignore[attr-defined]
        return func

    return register


def python_rules(include_windowed: bool = True) -> list[Rule]:
    """Every registered stateless rule, plus fresh windowed rules (their state is per instance)."""
    rules: list[Rule] = list(_REGISTRY.values())
    if include_windowed:
        from irflow.detection.windowed import windowed_rules

        rules.extend(windowed_rules())
    return rules


def load_rule_files(directories: Iterable[Path | str]) -> tuple[list[PythonRule], list[Unsupported]]:
    """A team's own Python rules: every `*.py` under each folder (recursively, sorted), executed afresh, and
    the rules its `@rule` decorators declared. A file that fails to run, declares no rule or reuses an id
    is reported with the reason and contributes nothing; it never stops the others from loading."""
    loaded: dict[str, PythonRule] = {}
    rejected: list[Unsupported] = []
    for directory in directories:
        for path in sorted(p for p in Path(directory).rglob("*.py") if p.is_file()):
            collected: dict[str, PythonRule] = {}
            name = "irflow_rule_file_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                rejected.append(Unsupported(str(path), "not loadable as a Python module"))
                continue
            module = importlib.util.module_from_spec(spec)
            _TARGETS.append(collected)
            sys.modules[name] = module  # dataclasses and pickling look their module up here
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # any error in a rule file is that file's problem, reported
                rejected.append(Unsupported(str(path), f"{type(exc).__name__}: {exc}"))
                continue
            finally:
                _TARGETS.pop()
                sys.modules.pop(name, None)
            taken = sorted(collected.keys() & (_REGISTRY.keys() | loaded.keys()))
            if taken:
                rejected.append(Unsupported(str(path), f"rule id(s) already defined elsewhere: {', '.join(taken)}"))
            elif not collected:
                rejected.append(
                    Unsupported(str(path), "declares no rule (use @rule from irflow.detection.python_rules)")
                )
            else:
                loaded.update(collected)
    return list(loaded.values()), rejected


def run_rule_tests(rules: Iterable[Rule] | None = None) -> list[RuleTestFailure]:
    """Run each Python rule's own test events (irflow's, by default); the failures (empty when all pass).
    A rule must carry at least one event it fires on and one it does not."""
    failures = []
    for registered in _REGISTRY.values() if rules is None else rules:
        if not isinstance(registered, PythonRule):
            continue
        verdicts = {test.expected for test in registered.tests}
        if verdicts != {True, False}:
            failures.append(
                RuleTestFailure(registered.rule_id, "(tests)", True, "needs an event it fires on and one it does not")
            )
        for test in registered.tests:
            try:
                got: bool | str = registered.matches(test.event)
            except Exception as exc:  # a crashing rule is a failing rule
                got = f"{type(exc).__name__}: {exc}"
            if got != test.expected:
                failures.append(RuleTestFailure(registered.rule_id, test.name, test.expected, got))
    return failures


# ---------------------------------------------------------------------------------------------------------
# helpers


def ok(event: Event) -> bool:
    """The call succeeded (no errorCode)."""
    return not event.get("errorCode")


def req(event: Event, key: str, default: Any = None) -> Any:
    params = event.get("requestParameters")
    if isinstance(params, dict):
        return params.get(key, default)
    return default


def identity(event: Event) -> dict[str, Any]:
    value = event.get("userIdentity")
    return value if isinstance(value, dict) else {}


def caller_name(event: Event) -> str | None:
    ident = identity(event)
    if ident.get("userName"):
        return ident["userName"]
    arn = ident.get("arn") or ""
    return arn.rsplit("/", 1)[-1] if "/" in arn else None


def is_service(event: Event) -> bool:
    ident = identity(event)
    return (
        ident.get("type") == "AWSService" or bool(ident.get("invokedBy")) or event.get("eventType") == "AwsServiceEvent"
    )


_IAC_AGENTS = ("terraform", "cloudformation", "pulumi", "aws-cdk")


def from_iac(event: Event) -> bool:
    """Made by an infrastructure-as-code tool (Terraform, CloudFormation, Pulumi, CDK): expected change
    traffic for the noisier change rules. A spoofed user agent evades only those rules, not the
    logging, exposure and credential rules."""
    agent = (event.get("userAgent") or "").lower()
    return any(tool in agent for tool in _IAC_AGENTS)


def as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def statements(policy: Any) -> list[dict[str, Any]]:
    policy = as_json(policy)
    if not isinstance(policy, dict):
        return []
    found = policy.get("Statement", [])
    if isinstance(found, dict):
        found = [found]
    return [s for s in found if isinstance(s, dict)]


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def principals(statement: Mapping[str, Any]) -> list[str]:
    value = statement.get("Principal")
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(p) for v in value.values() for p in _listify(v)]
    return []


def public_statement(statement: Mapping[str, Any]) -> bool:
    """Allow to everyone with no condition narrowing it."""
    return statement.get("Effect") == "Allow" and "*" in principals(statement) and not statement.get("Condition")


def foreign_principals(policy: Any, account: str | None) -> bool:
    """An Allow statement trusts "*" or an AWS principal outside `account`."""
    for statement in statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        for p in principals(statement):
            if p == "*":
                return True
            if p.startswith("arn:aws:iam::") or p.isdigit():
                owner = p.split(":")[4] if p.startswith("arn:") else p
                if account and owner != account:
                    return True
    return False


def account_of(event: Event) -> str | None:
    return event.get("recipientAccountId") or identity(event).get("accountId")


def ev(
    name: str,
    source: str,
    *,
    error: str | None = None,
    request: Mapping[str, Any] | None = None,
    response: Mapping[str, Any] | None = None,
    user_type: str = "IAMUser",
    user: str = "alice",
    **extra: Any,
) -> dict[str, Any]:
    """A test event."""
    event: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": "2024-01-01T00:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": user_type,
            "arn": f"arn:aws:iam::111111111111:user/{user}"
            if user_type == "IAMUser"
            else "arn:aws:iam::111111111111:root",
            "accountId": "111111111111",
            "userName": user,
        },
        "requestParameters": dict(request) if request is not None else None,
        "responseElements": dict(response) if response is not None else None,
        "recipientAccountId": "111111111111",
        "eventType": "AwsApiCall",
    }
    if error:
        event["errorCode"] = error
    event.update(extra)
    return event


T = RuleTest
CT = "cloudtrail.amazonaws.com"
IAM = "iam.amazonaws.com"
EC2 = "ec2.amazonaws.com"
S3 = "s3.amazonaws.com"
RDS = "rds.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
SIGNIN = "signin.amazonaws.com"
STS = "sts.amazonaws.com"


def _simple(
    rule_id: str,
    title: str,
    severity: Severity,
    finding_type: str,
    source: str | set[str],
    names: set[str],
    *,
    allow_errors: bool = False,
    except_services: bool = False,
    tests: Iterable[RuleTest] = (),
    description: str = "",
) -> None:
    """A rule that fires on any call of `names`: successful ones unless `allow_errors`, not made by an AWS
    service on your behalf when `except_services`. Its tests are generated from that, plus any given."""
    sources = {source} if isinstance(source, str) else set(source)
    first, source = sorted(names)[0], sorted(sources)[0]
    generated = [T(f"{first} fires", ev(first, source), True), T("other call", ev("DescribeNothing", source), False)]
    if not allow_errors:
        generated.append(T("failed call", ev(first, source, error="AccessDenied"), False))
    if except_services:
        generated.append(T("made by an AWS service", ev(first, source, eventType="AwsServiceEvent"), False))

    def check(event: Event) -> bool:
        return (allow_errors or ok(event)) and not (except_services and is_service(event))

    check.__name__ = rule_id.rsplit(".", 1)[-1].replace("-", "_")
    rule(
        id=rule_id,
        title=title,
        severity=severity,
        finding_type=finding_type,
        sources=sources,
        names=names,
        tests=[*generated, *tests],
        description=description or title,
    )(check)


# ---------------------------------------------------------------------------------------------------------
# defense evasion: logging and monitoring


@rule(
    id="irflow.cloudtrail.trail-stopped",
    title="CloudTrail logging stopped or trail deleted",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/CloudTrailLoggingDisabled",
    sources={CT},
    names={"StopLogging", "DeleteTrail"},
    tests=[
        T("stops logging", ev("StopLogging", CT, request={"name": "main"}), True),
        T("deletes trail", ev("DeleteTrail", CT, request={"name": "main"}), True),
        T("failed on a bad name", ev("StopLogging", CT, error="InvalidTrailNameException"), False),
        T("starts logging", ev("StartLogging", CT), False),
    ],
)
def trail_stopped(event: Event) -> bool:
    # Access denied is still an attempt worth an alert; a bad trail name is not.
    return event.get("errorCode") in (None, "AccessDenied", "AccessDeniedException")


@rule(
    id="irflow.cloudtrail.event-selectors-reduced",
    title="CloudTrail event selectors stop recording management events",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/CloudTrailEventSelectorsChanged",
    sources={CT},
    names={"PutEventSelectors"},
    tests=[
        T(
            "management events off",
            ev("PutEventSelectors", CT, request={"eventSelectors": [{"includeManagementEvents": False}]}),
            True,
        ),
        T(
            "all events",
            ev(
                "PutEventSelectors",
                CT,
                request={"eventSelectors": [{"includeManagementEvents": True, "readWriteType": "All"}]},
            ),
            False,
        ),
        T(
            "advanced selector excluding management",
            ev(
                "PutEventSelectors",
                CT,
                request={
                    "advancedEventSelectors": [{"fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]}]}]
                },
            ),
            True,
        ),
    ],
)
def event_selectors_reduced(event: Event) -> bool:
    if not ok(event):
        return False
    for selector in _listify(req(event, "eventSelectors")):
        if isinstance(selector, dict) and (
            selector.get("includeManagementEvents") is False
            or selector.get("readWriteType") in ("ReadOnly", "WriteOnly")
            or selector.get("excludeManagementEventSources")
        ):
            return True
    for selector in _listify(req(event, "advancedEventSelectors")):
        for fs in _listify(selector.get("fieldSelectors") if isinstance(selector, dict) else None):
            if (
                isinstance(fs, dict)
                and fs.get("field") == "eventCategory"
                and "Management" not in (fs.get("equals") or [])
            ):
                return True
    return False


@rule(
    id="irflow.guardduty.detector-disabled",
    title="GuardDuty detector deleted or disabled",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/GuardDutyDisabled",
    sources={"guardduty.amazonaws.com"},
    names={
        "DeleteDetector",
        "UpdateDetector",
        "DisassociateFromMasterAccount",
        "DisassociateFromAdministratorAccount",
        "StopMonitoringMembers",
        "DeleteMembers",
    },
    tests=[
        T("deleted", ev("DeleteDetector", "guardduty.amazonaws.com", request={"detectorId": "d"}), True),
        T("disabled", ev("UpdateDetector", "guardduty.amazonaws.com", request={"enable": False}), True),
        T("enabled", ev("UpdateDetector", "guardduty.amazonaws.com", request={"enable": True}), False),
    ],
)
def guardduty_disabled(event: Event) -> bool:
    if not ok(event):
        return False
    if event.get("eventName") == "UpdateDetector":
        return req(event, "enable") is False
    return True


_simple(
    rule_id="irflow.guardduty.ipset-changed",
    title="GuardDuty trusted IP list created or updated",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/GuardDutyTrustedIPList",
    source="guardduty.amazonaws.com",
    names={"CreateIPSet", "UpdateIPSet"},
    tests=[
        T("created", ev("CreateIPSet", "guardduty.amazonaws.com"), True),
        T("denied", ev("CreateIPSet", "guardduty.amazonaws.com", error="AccessDenied"), False),
    ],
)


_simple(
    "irflow.ec2.flow-logs-deleted",
    "VPC flow logs deleted",
    Severity.HIGH,
    "DefenseEvasion:EC2/FlowLogsDeleted",
    EC2,
    {"DeleteFlowLogs"},
)
_simple(
    "irflow.route53resolver.query-logs-deleted",
    "Route 53 Resolver query logging deleted",
    Severity.HIGH,
    "DefenseEvasion:IAMUser/DNSLogsDeleted",
    "route53resolver.amazonaws.com",
    {"DeleteResolverQueryLogConfig", "DisassociateResolverQueryLogConfig"},
)
_simple(
    "irflow.config.recorder-stopped",
    "AWS Config recorder stopped or deleted",
    Severity.HIGH,
    "DefenseEvasion:IAMUser/ConfigDisabled",
    "config.amazonaws.com",
    {"StopConfigurationRecorder", "DeleteConfigurationRecorder", "DeleteDeliveryChannel"},
)
_simple(
    "irflow.ec2.ebs-default-encryption-disabled",
    "EBS encryption by default disabled",
    Severity.MEDIUM,
    "DefenseEvasion:EC2/EBSEncryptionDisabled",
    EC2,
    {"DisableEbsEncryptionByDefault"},
)
_simple(
    "irflow.organizations.leave",
    "Account tried to leave its AWS Organization",
    Severity.HIGH,
    "DefenseEvasion:IAMUser/LeaveOrganization",
    "organizations.amazonaws.com",
    {"LeaveOrganization"},
    allow_errors=True,
)


_simple(
    rule_id="irflow.macie.disabled",
    title="Amazon Macie disabled, paused or reconfigured",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/MacieDisabled",
    source={"macie2.amazonaws.com", "macie.amazonaws.com"},
    names={
        "DisableMacie",
        "UpdateMacieSession",
        "DisableOrganizationAdminAccount",
        "DisassociateFromMasterAccount",
        "DisassociateFromAdministratorAccount",
        "DeleteMember",
    },
    tests=[
        T("paused", ev("UpdateMacieSession", "macie2.amazonaws.com", request={"status": "PAUSED"}), True),
        T("list members", ev("ListMembers", "macie2.amazonaws.com"), False),
    ],
)


_simple(
    "irflow.securityhub.disabled",
    "Security Hub disabled or findings suppressed",
    Severity.MEDIUM,
    "DefenseEvasion:IAMUser/SecurityHubEvasion",
    "securityhub.amazonaws.com",
    {"DisableSecurityHub", "BatchDisableStandards", "DeleteInsight", "UpdateFindings", "DeleteActionTarget"},
)
_simple(
    "irflow.waf.disassociated",
    "WAF web ACL disassociated from a resource",
    Severity.MEDIUM,
    "DefenseEvasion:IAMUser/WAFDisassociated",
    "wafv2.amazonaws.com",
    {"DisassociateWebACL"},
)
_simple(
    "irflow.bedrock.logging-deleted",
    "Bedrock model invocation logging deleted",
    Severity.MEDIUM,
    "DefenseEvasion:IAMUser/BedrockLoggingDeleted",
    "bedrock.amazonaws.com",
    {"DeleteModelInvocationLoggingConfiguration"},
)
_simple(
    "irflow.bedrock.guardrail-changed",
    "Bedrock guardrail updated or deleted",
    Severity.MEDIUM,
    "DefenseEvasion:IAMUser/BedrockGuardrailChanged",
    "bedrock.amazonaws.com",
    {"UpdateGuardrail", "DeleteGuardrail"},
)
_simple(
    "irflow.rds.activity-stream-stopped",
    "RDS database activity stream stopped",
    Severity.MEDIUM,
    "DefenseEvasion:RDS/ActivityStreamStopped",
    RDS,
    {"StopActivityStream"},
)
_simple(
    "irflow.s3.bucket-encryption-deleted",
    "S3 bucket default encryption removed",
    Severity.MEDIUM,
    "DefenseEvasion:S3/BucketEncryptionDeleted",
    S3,
    {"DeleteBucketEncryption"},
)
_simple(
    "irflow.s3.bucket-replication-deleted",
    "S3 bucket replication removed",
    Severity.LOW,
    "Impact:S3/BucketReplicationDeleted",
    S3,
    {"DeleteBucketReplication"},
)


@rule(
    id="irflow.s3.bucket-logging-disabled",
    title="S3 server access logging disabled",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:S3/BucketLoggingDisabled",
    sources={S3},
    names={"PutBucketLogging"},
    tests=[
        T("disabled", ev("PutBucketLogging", S3, request={"bucketName": "b", "BucketLoggingStatus": {}}), True),
        T(
            "enabled",
            ev("PutBucketLogging", S3, request={"bucketName": "b", "BucketLoggingStatus": {"LoggingEnabled": {}}}),
            False,
        ),
        T("no status", ev("PutBucketLogging", S3, request={"bucketName": "b"}), False),
    ],
)
def bucket_logging_disabled(event: Event) -> bool:
    status = req(event, "BucketLoggingStatus")
    return ok(event) and isinstance(status, dict) and "LoggingEnabled" not in status


@rule(
    id="irflow.s3.versioning-or-mfa-delete-disabled",
    title="S3 versioning suspended or MFA delete disabled",
    severity=Severity.MEDIUM,
    finding_type="Impact:S3/VersioningSuspended",
    sources={S3},
    names={"PutBucketVersioning"},
    tests=[
        T(
            "suspended",
            ev("PutBucketVersioning", S3, request={"VersioningConfiguration": {"Status": "Suspended"}}),
            True,
        ),
        T(
            "mfa delete off",
            ev(
                "PutBucketVersioning",
                S3,
                request={"VersioningConfiguration": {"Status": "Enabled", "MfaDelete": "Disabled"}},
            ),
            True,
        ),
        T("enabled", ev("PutBucketVersioning", S3, request={"VersioningConfiguration": {"Status": "Enabled"}}), False),
    ],
)
def versioning_disabled(event: Event) -> bool:
    config = req(event, "VersioningConfiguration")
    if not ok(event) or not isinstance(config, dict):
        return False
    return config.get("Status") in ("Suspended", "Disabled") or config.get("MfaDelete") == "Disabled"


@rule(
    id="irflow.s3.public-access-block-removed",
    title="S3 Block Public Access removed or weakened",
    severity=Severity.HIGH,
    finding_type="Policy:S3/BlockPublicAccessDisabled",
    sources={S3},
    names={
        "DeleteBucketPublicAccessBlock",
        "PutBucketPublicAccessBlock",
        "DeleteAccountPublicAccessBlock",
        "PutAccountPublicAccessBlock",
    },
    tests=[
        T("deleted", ev("DeleteBucketPublicAccessBlock", S3, request={"bucketName": "b"}), True),
        T(
            "weakened",
            ev(
                "PutBucketPublicAccessBlock",
                S3,
                request={"PublicAccessBlockConfiguration": {"BlockPublicAcls": False, "BlockPublicPolicy": True}},
            ),
            True,
        ),
        T(
            "all blocked",
            ev(
                "PutBucketPublicAccessBlock",
                S3,
                request={"PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True}},
            ),
            False,
        ),
    ],
)
def public_access_block_removed(event: Event) -> bool:
    if not ok(event):
        return False
    if event.get("eventName", "").startswith("Delete"):
        return True
    config = req(event, "PublicAccessBlockConfiguration")
    return isinstance(config, dict) and any(v is False for v in config.values())


# ---------------------------------------------------------------------------------------------------------
# initial access and root


@rule(
    id="irflow.signin.root-activity",
    title="Root user activity",
    severity=Severity.HIGH,
    finding_type="Policy:IAMUser/RootCredentialUsage",
    identity_types=["Root"],
    tests=[
        T(
            "root console login",
            ev("ConsoleLogin", SIGNIN, user_type="Root", response={"ConsoleLogin": "Success"}),
            True,
        ),
        T("root changes a bucket", ev("PutBucketVersioning", S3, user_type="Root"), True),
        T("root reads", ev("ListAccessKeys", IAM, user_type="Root"), False),
        T("iam user", ev("PutBucketVersioning", S3), False),
    ],
)
def root_activity(event: Event) -> bool:
    """Root does something that changes state (console logins included; reads and service calls excluded)."""
    ident = identity(event)
    if ident.get("type") != "Root" or is_service(event) or not ok(event):
        return False
    name = event.get("eventName") or ""
    if name == "ConsoleLogin":
        return (event.get("responseElements") or {}).get("ConsoleLogin") == "Success"
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
    sources={SIGNIN},
    names={"ConsoleLogin"},
    tests=[
        T("failed", ev("ConsoleLogin", SIGNIN, user_type="Root", response={"ConsoleLogin": "Failure"}), True),
        T("success", ev("ConsoleLogin", SIGNIN, user_type="Root", response={"ConsoleLogin": "Success"}), False),
    ],
)
def root_login_failed(event: Event) -> bool:
    return (
        identity(event).get("type") == "Root" and (event.get("responseElements") or {}).get("ConsoleLogin") == "Failure"
    )


@rule(
    id="irflow.signin.root-password-changed",
    title="Root password changed",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/RootPasswordChanged",
    sources={SIGNIN},
    names={"PasswordUpdated"},
    tests=[
        T("changed", ev("PasswordUpdated", SIGNIN, user_type="Root", response={"PasswordUpdated": "Success"}), True),
        T("iam user", ev("PasswordUpdated", SIGNIN, response={"PasswordUpdated": "Success"}), False),
    ],
)
def root_password_changed(event: Event) -> bool:
    return (
        identity(event).get("type") == "Root"
        and (event.get("responseElements") or {}).get("PasswordUpdated") == "Success"
    )


def _iam_user_console_success(event: Event) -> bool:
    return (
        identity(event).get("type") == "IAMUser"
        and (event.get("responseElements") or {}).get("ConsoleLogin") == "Success"
    )


@rule(
    id="irflow.signin.console-login-without-mfa",
    title="IAM user console login without MFA",
    severity=Severity.MEDIUM,
    finding_type="InitialAccess:IAMUser/ConsoleLoginWithoutMFA",
    sources={SIGNIN},
    names={"ConsoleLogin"},
    tests=[
        T(
            "no mfa",
            ev("ConsoleLogin", SIGNIN, response={"ConsoleLogin": "Success"}, additionalEventData={"MFAUsed": "No"}),
            True,
        ),
        T(
            "mfa",
            ev("ConsoleLogin", SIGNIN, response={"ConsoleLogin": "Success"}, additionalEventData={"MFAUsed": "Yes"}),
            False,
        ),
        T(
            "failed",
            ev("ConsoleLogin", SIGNIN, response={"ConsoleLogin": "Failure"}, additionalEventData={"MFAUsed": "No"}),
            False,
        ),
    ],
)
def console_login_without_mfa(event: Event) -> bool:
    return _iam_user_console_success(event) and (event.get("additionalEventData") or {}).get("MFAUsed") == "No"


@rule(
    id="irflow.signin.console-login-iam-user",
    title="Console login by an IAM user (not through SSO/SAML)",
    severity=Severity.LOW,
    finding_type="InitialAccess:IAMUser/ConsoleLoginWithoutSAML",
    sources={SIGNIN},
    names={"ConsoleLogin"},
    tests=[
        T("iam user", ev("ConsoleLogin", SIGNIN, response={"ConsoleLogin": "Success"}), True),
        T(
            "assumed role",
            ev("ConsoleLogin", SIGNIN, user_type="AssumedRole", response={"ConsoleLogin": "Success"}),
            False,
        ),
    ],
)
def console_login_iam_user(event: Event) -> bool:
    return _iam_user_console_success(event)


@rule(
    id="irflow.signin.mfa-failure",
    title="Console login failed at the MFA step",
    severity=Severity.LOW,
    finding_type="UnauthorizedAccess:IAMUser/MFAFailure",
    sources={SIGNIN},
    names={"ConsoleLogin"},
    tests=[
        T(
            "mfa failed",
            ev(
                "ConsoleLogin",
                SIGNIN,
                response={"ConsoleLogin": "Failure"},
                additionalEventData={"MFAUsed": "Yes"},
                errorMessage="Failed authentication",
            ),
            True,
        ),
        T("success", ev("ConsoleLogin", SIGNIN, response={"ConsoleLogin": "Success"}), False),
    ],
)
def mfa_failure(event: Event) -> bool:
    return (event.get("responseElements") or {}).get("ConsoleLogin") == "Failure" and (
        event.get("additionalEventData") or {}
    ).get("MFAUsed") == "Yes"


# ---------------------------------------------------------------------------------------------------------
# persistence and privilege escalation: IAM


@rule(
    id="irflow.iam.user-created",
    title="IAM user created",
    severity=Severity.LOW,
    finding_type="Persistence:IAMUser/UserCreated",
    sources={IAM},
    names={"CreateUser"},
    tests=[
        T("created", ev("CreateUser", IAM, request={"userName": "bob"}), True),
        T(
            "by cloudformation",
            ev("CreateUser", IAM, request={"userName": "bob"}, userAgent="cloudformation.amazonaws.com"),
            False,
        ),
        T("by terraform", ev("CreateUser", IAM, request={"userName": "bob"}, userAgent="Terraform/1.1.2"), False),
        T("failed", ev("CreateUser", IAM, error="EntityAlreadyExists"), False),
    ],
)
def user_created(event: Event) -> bool:
    return ok(event) and not from_iac(event) and not is_service(event)


@rule(
    id="irflow.iam.access-key-for-other-user",
    title="Access key created for another IAM user",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/BackdoorAccessKey",
    sources={IAM},
    names={"CreateAccessKey"},
    tests=[
        T("other user", ev("CreateAccessKey", IAM, request={"userName": "bob"}), True),
        T("own key", ev("CreateAccessKey", IAM, request={"userName": "alice"}), False),
        T("failed", ev("CreateAccessKey", IAM, error="LimitExceededException", request={"userName": "bob"}), False),
    ],
)
def access_key_for_other_user(event: Event) -> bool:
    target = req(event, "userName")
    return ok(event) and bool(target) and target != caller_name(event)


@rule(
    id="irflow.iam.root-access-key-created",
    title="Root access key created",
    severity=Severity.CRITICAL,
    finding_type="Persistence:IAMUser/RootAccessKeyCreated",
    sources={IAM},
    names={"CreateAccessKey"},
    tests=[
        T("root key", ev("CreateAccessKey", IAM, user_type="Root"), True),
        T("user key", ev("CreateAccessKey", IAM), False),
    ],
)
def root_access_key(event: Event) -> bool:
    return ok(event) and identity(event).get("type") == "Root" and not req(event, "userName")


@rule(
    id="irflow.iam.login-profile-changed",
    title="Console password created or reset for another IAM user",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/LoginProfileChanged",
    sources={IAM},
    names={"CreateLoginProfile", "UpdateLoginProfile"},
    tests=[
        T("created for other", ev("CreateLoginProfile", IAM, request={"userName": "bob"}), True),
        T("reset, no forced change", ev("UpdateLoginProfile", IAM, request={"userName": "bob"}), True),
        T(
            "reset, forced change",
            ev("UpdateLoginProfile", IAM, request={"userName": "bob", "passwordResetRequired": True}),
            False,
        ),
        T("own password", ev("UpdateLoginProfile", IAM, request={"userName": "alice"}), False),
    ],
)
def login_profile_changed(event: Event) -> bool:
    target = req(event, "userName")
    if not ok(event) or not target or target == caller_name(event) or from_iac(event):
        return False
    return event.get("eventName") == "CreateLoginProfile" or req(event, "passwordResetRequired") is not True


_ADMIN_POLICIES = ("/AdministratorAccess", "/IAMFullAccess", "/PowerUserAccess")


@rule(
    id="irflow.iam.admin-policy-attached",
    title="Administrator policy attached to a user, role or group",
    severity=Severity.HIGH,
    finding_type="PrivilegeEscalation:IAMUser/AdministrativePermissions",
    sources={IAM},
    names={"AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy"},
    tests=[
        T(
            "admin to user",
            ev("AttachUserPolicy", IAM, request={"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            True,
        ),
        T(
            "read only",
            ev("AttachUserPolicy", IAM, request={"policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
            False,
        ),
        T(
            "terraform",
            ev(
                "AttachRolePolicy",
                IAM,
                request={"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
                userAgent="APN/1.0 HashiCorp/1.0 Terraform/1.1.2",
            ),
            False,
        ),
    ],
)
def admin_policy_attached(event: Event) -> bool:
    return ok(event) and not from_iac(event) and str(req(event, "policyArn") or "").endswith(_ADMIN_POLICIES)


def _allows_everything(policy: Any) -> bool:
    for statement in statements(policy):
        actions = _listify(statement.get("Action"))
        resources = _listify(statement.get("Resource"))
        if statement.get("Effect") == "Allow" and ("*" in actions or "*:*" in actions) and "*" in resources:
            return True
    return False


@rule(
    id="irflow.iam.inline-admin-policy",
    title="Inline policy granting all actions on all resources",
    severity=Severity.HIGH,
    finding_type="PrivilegeEscalation:IAMUser/AdministrativePermissions",
    sources={IAM},
    names={"PutUserPolicy", "PutRolePolicy", "PutGroupPolicy", "CreatePolicyVersion", "CreatePolicy"},
    tests=[
        T(
            "star star",
            ev(
                "PutUserPolicy",
                IAM,
                request={"policyDocument": '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'},
            ),
            True,
        ),
        T(
            "narrow",
            ev(
                "PutUserPolicy",
                IAM,
                request={"policyDocument": '{"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}'},
            ),
            False,
        ),
    ],
)
def inline_admin_policy(event: Event) -> bool:
    return ok(event) and _allows_everything(req(event, "policyDocument"))


@rule(
    id="irflow.iam.policy-version-set-default",
    title="IAM policy default version changed",
    severity=Severity.MEDIUM,
    finding_type="PrivilegeEscalation:IAMUser/PolicyVersionChanged",
    sources={IAM},
    names={"SetDefaultPolicyVersion", "CreatePolicyVersion"},
    tests=[
        T("set default", ev("SetDefaultPolicyVersion", IAM, request={"versionId": "v1"}), True),
        T("new default", ev("CreatePolicyVersion", IAM, request={"setAsDefault": True}), True),
        T("new non-default", ev("CreatePolicyVersion", IAM, request={"setAsDefault": False}), False),
    ],
)
def policy_version_set(event: Event) -> bool:
    if not ok(event):
        return False
    return event.get("eventName") == "SetDefaultPolicyVersion" or req(event, "setAsDefault") is True


@rule(
    id="irflow.iam.role-trust-opened",
    title="Role trust policy lets an outside or anonymous principal assume it",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/BackdoorRole",
    sources={IAM},
    names={"UpdateAssumeRolePolicy", "CreateRole"},
    tests=[
        T(
            "external account",
            ev(
                "UpdateAssumeRolePolicy",
                IAM,
                request={
                    "policyDocument": '{"Statement":[{"Effect":"Allow",'
                    '"Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"}]}'
                },
            ),
            True,
        ),
        T(
            "anyone",
            ev(
                "UpdateAssumeRolePolicy",
                IAM,
                request={
                    "policyDocument": '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}'
                },
            ),
            True,
        ),
        T(
            "service",
            ev(
                "UpdateAssumeRolePolicy",
                IAM,
                request={
                    "policyDocument": '{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},'
                    '"Action":"sts:AssumeRole"}]}'
                },
            ),
            False,
        ),
    ],
)
def role_trust_opened(event: Event) -> bool:
    document = req(event, "policyDocument") or req(event, "assumeRolePolicyDocument")
    return ok(event) and foreign_principals(document, account_of(event))


@rule(
    id="irflow.iam.saml-provider-changed",
    title="SAML identity provider created, updated or deleted",
    severity=Severity.HIGH,
    finding_type="Persistence:IAMUser/SAMLProviderChanged",
    sources={IAM},
    names={"CreateSAMLProvider", "UpdateSAMLProvider", "DeleteSAMLProvider"},
    tests=[
        T("created", ev("CreateSAMLProvider", IAM), True),
        T("identity center", ev("CreateSAMLProvider", IAM, request={"name": "AWSSSO_1_DO_NOT_DELETE"}), False),
        T("failed", ev("CreateSAMLProvider", IAM, error="AccessDenied"), False),
    ],
)
def saml_provider_changed(event: Event) -> bool:
    """IAM Identity Center manages its own AWSSSO_ providers; those are not suspicious."""
    sso = "sso.amazonaws.com" in (event.get("userAgent") or "") or str(req(event, "name") or "").startswith("AWSSSO_")
    return ok(event) and not sso


@rule(
    id="irflow.iam.deny-all-quarantine",
    title="Compromised-key quarantine policy applied to an IAM user",
    severity=Severity.HIGH,
    finding_type="CredentialAccess:IAMUser/AccessKeyCompromised",
    sources={IAM},
    names={"AttachUserPolicy", "PutUserPolicy"},
    tests=[
        T(
            "quarantine",
            ev("AttachUserPolicy", IAM, request={"policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2"}),
            True,
        ),
        T(
            "aws exposed-key policy",
            ev("PutUserPolicy", IAM, request={"policyName": "AWSExposedCredentialPolicy_DO_NOT_REMOVE"}),
            True,
        ),
        T("other", ev("AttachUserPolicy", IAM, request={"policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}), False),
    ],
)
def quarantine_policy(event: Event) -> bool:
    return ok(event) and (
        "AWSCompromisedKeyQuarantine" in str(req(event, "policyArn") or "")
        or str(req(event, "policyName") or "").startswith("AWSExposedCredentialPolicy")
    )


_simple(
    "irflow.rolesanywhere.trust-anchor-created",
    "IAM Roles Anywhere trust anchor or profile created",
    Severity.HIGH,
    "Persistence:IAMUser/RolesAnywhereTrustAnchor",
    "rolesanywhere.amazonaws.com",
    {"CreateTrustAnchor", "CreateProfile"},
)


@rule(
    id="irflow.sts.federation-token",
    title="Federation token requested by an IAM user",
    severity=Severity.LOW,
    finding_type="Persistence:IAMUser/FederationToken",
    sources={"sts.amazonaws.com"},
    names={"GetFederationToken"},
    tests=[
        T("iam user", ev("GetFederationToken", "sts.amazonaws.com"), True),
        T("denied", ev("GetFederationToken", "sts.amazonaws.com", error="AccessDenied"), False),
    ],
)
def federation_token(event: Event) -> bool:
    return ok(event) and identity(event).get("type") == "IAMUser"


# ---------------------------------------------------------------------------------------------------------
# credential access


@rule(
    id="irflow.ec2.get-password-data",
    title="EC2 Windows password data requested",
    severity=Severity.MEDIUM,
    finding_type="CredentialAccess:IAMUser/EC2PasswordData",
    sources={EC2},
    names={"GetPasswordData"},
    tests=[
        T("requested", ev("GetPasswordData", EC2, request={"instanceId": "i-1"}), True),
        T("denied attempt still counts", ev("GetPasswordData", EC2, error="Client.UnauthorizedOperation"), True),
        T("service", ev("GetPasswordData", EC2, user_type="AWSService"), False),
    ],
)
def get_password_data(event: Event) -> bool:
    return not is_service(event)


_simple(
    rule_id="irflow.secretsmanager.batch-get",
    title="Secrets Manager batch secret retrieval",
    severity=Severity.MEDIUM,
    finding_type="CredentialAccess:IAMUser/SecretsBatchRetrieval",
    source="secretsmanager.amazonaws.com",
    names={"BatchGetSecretValue"},
    tests=[
        T("batch", ev("BatchGetSecretValue", "secretsmanager.amazonaws.com", request={"filters": []}), True),
        T("denied", ev("BatchGetSecretValue", "secretsmanager.amazonaws.com", error="AccessDenied"), False),
    ],
    except_services=True,
)


@rule(
    id="irflow.ec2.download-user-data",
    title="EC2 instance user data read",
    severity=Severity.LOW,
    finding_type="Discovery:IAMUser/EC2UserDataRead",
    sources={EC2},
    names={"DescribeInstanceAttribute"},
    tests=[
        T("user data", ev("DescribeInstanceAttribute", EC2, request={"attribute": "userData"}), True),
        T(
            "other attribute",
            ev("DescribeInstanceAttribute", EC2, request={"attribute": "disableApiTermination"}),
            False,
        ),
        T(
            "terraform refresh",
            ev("DescribeInstanceAttribute", EC2, request={"attribute": "userData"}, userAgent="Terraform/1"),
            False,
        ),
    ],
)
def download_user_data(event: Event) -> bool:
    return req(event, "attribute") == "userData" and not is_service(event) and not from_iac(event)


# ---------------------------------------------------------------------------------------------------------
# execution and lateral movement


@rule(
    id="irflow.ec2.user-data-modified",
    title="EC2 instance user data (startup script) modified",
    severity=Severity.HIGH,
    finding_type="Execution:EC2/UserDataModified",
    sources={EC2},
    names={"ModifyInstanceAttribute"},
    tests=[
        T(
            "user data",
            ev("ModifyInstanceAttribute", EC2, request={"instanceId": "i-1", "userData": "<removed>"}),
            True,
        ),
        T("instance type", ev("ModifyInstanceAttribute", EC2, request={"instanceType": {"value": "t3.nano"}}), False),
    ],
)
def user_data_modified(event: Event) -> bool:
    params = event.get("requestParameters") or {}
    return ok(event) and ("userData" in params or params.get("attribute") == "userData")


_UNUSUAL_FAMILIES = ("p2", "p3", "p4", "p5", "g3", "g4", "g5", "g6", "x1", "x2", "inf", "trn", "dl1", "f1", "u-")


@rule(
    id="irflow.ec2.unusual-instance-launch",
    title="GPU or very large EC2 instances launched (or attempted)",
    severity=Severity.MEDIUM,
    finding_type="Impact:EC2/UnusualInstanceLaunch",
    sources={EC2},
    names={"RunInstances"},
    tests=[
        T("gpu", ev("RunInstances", EC2, request={"instanceType": "p2.xlarge"}), True),
        T(
            "gpu over quota",
            ev("RunInstances", EC2, error="Client.VcpuLimitExceeded", request={"instanceType": "p3.2xlarge"}),
            True,
        ),
        T("small", ev("RunInstances", EC2, request={"instanceType": "t3.micro"}), False),
    ],
)
def unusual_instance(event: Event) -> bool:
    return str(req(event, "instanceType") or "").startswith(_UNUSUAL_FAMILIES) and not is_service(event)


_simple(
    rule_id="irflow.ssm.command-or-session",
    title="SSM command sent to instances or session started",
    severity=Severity.LOW,
    finding_type="Execution:EC2/SSMCommand",
    source="ssm.amazonaws.com",
    names={"SendCommand", "StartSession"},
    tests=[
        T("command", ev("SendCommand", "ssm.amazonaws.com", request={"documentName": "AWS-RunShellScript"}), True),
        T("session", ev("StartSession", "ssm.amazonaws.com", request={"target": "i-1"}), True),
        T("denied", ev("SendCommand", "ssm.amazonaws.com", error="AccessDenied"), False),
    ],
    except_services=True,
)


_simple(
    "irflow.ec2-instance-connect.ssh-key-pushed",
    "SSH public key pushed through EC2 Instance Connect",
    Severity.MEDIUM,
    "LateralMovement:EC2/InstanceConnectKeyPushed",
    "ec2-instance-connect.amazonaws.com",
    {"SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"},
)
_simple(
    "irflow.ec2.serial-console-enabled",
    "EC2 serial console access enabled",
    Severity.MEDIUM,
    "LateralMovement:EC2/SerialConsoleEnabled",
    EC2,
    {"EnableSerialConsoleAccess"},
)


@rule(
    id="irflow.lambda.code-or-layers-changed",
    title="Lambda function code or layers changed",
    severity=Severity.MEDIUM,
    finding_type="Persistence:Lambda/FunctionModified",
    sources={LAMBDA},
    names={
        "UpdateFunctionCode20150331v2",
        "UpdateFunctionCode20150331",
        "UpdateFunctionConfiguration20150331v2",
        "UpdateFunctionConfiguration20150331",
        "PublishLayerVersion20181031",
        "AddLayerVersionPermission20181031",
    },
    tests=[
        T("code", ev("UpdateFunctionCode20150331v2", LAMBDA, request={"functionName": "f"}), True),
        T(
            "layers",
            ev(
                "UpdateFunctionConfiguration20150331v2",
                LAMBDA,
                request={"functionName": "f", "layers": ["arn:aws:lambda:us-east-1:9:layer:x:1"]},
            ),
            True,
        ),
        T("timeout only", ev("UpdateFunctionConfiguration20150331v2", LAMBDA, request={"timeout": 3}), False),
        T("console edit", ev("UpdateFunctionCode20150331v2", LAMBDA, userAgent="console.amazonaws.com"), False),
    ],
)
def lambda_changed(event: Event) -> bool:
    """Programmatic changes only (backdoors are scripted; console edits are made by a person at the keyboard)."""
    if not ok(event) or is_service(event) or "console.amazonaws.com" in (event.get("userAgent") or ""):
        return False
    if event.get("eventName", "").startswith("UpdateFunctionConfiguration"):
        return bool(req(event, "layers") or (event.get("responseElements") or {}).get("layers"))
    return True


_simple(
    rule_id="irflow.lambda.permission-added",
    title="Lambda function resource policy grants invoke permission",
    severity=Severity.MEDIUM,
    finding_type="Persistence:Lambda/BackdoorFunction",
    source=LAMBDA,
    names={"AddPermission20150331", "AddPermission20150331v2"},
    tests=[
        T("public invoke", ev("AddPermission20150331v2", LAMBDA, request={"principal": "*"}), True),
        T("denied", ev("AddPermission20150331v2", LAMBDA, error="AccessDenied"), False),
    ],
    except_services=True,
)


_simple(
    rule_id="irflow.bedrock.model-access-enabled",
    title="Bedrock foundation model access enabled or invoked after enabling",
    severity=Severity.MEDIUM,
    finding_type="Impact:IAMUser/BedrockModelAccess",
    source="bedrock.amazonaws.com",
    names={"PutUseCaseForModelAccess", "CreateFoundationModelAgreement", "PutFoundationModelEntitlement"},
    tests=[
        T("agreement", ev("CreateFoundationModelAgreement", "bedrock.amazonaws.com"), True),
        T("denied", ev("CreateFoundationModelAgreement", "bedrock.amazonaws.com", error="AccessDenied"), False),
    ],
)


# ---------------------------------------------------------------------------------------------------------
# exfiltration and exposure


def _open_cidr(value: Any) -> bool:
    """Any /0 (AWS ignores the host bits: 208.236.235.254/0 is the whole internet)."""
    return isinstance(value, str) and value.endswith("/0")


@rule(
    id="irflow.ec2.security-group-open-to-world",
    title="Security group ingress opened to 0.0.0.0/0 or ::/0",
    severity=Severity.HIGH,
    finding_type="Policy:EC2/SecurityGroupOpenToWorld",
    sources={EC2},
    names={"AuthorizeSecurityGroupIngress"},
    tests=[
        T(
            "ssh to world",
            ev(
                "AuthorizeSecurityGroupIngress",
                EC2,
                request={
                    "ipPermissions": {"items": [{"fromPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}
                },
            ),
            True,
        ),
        T(
            "flat form",
            ev("AuthorizeSecurityGroupIngress", EC2, request={"cidrIp": "0.0.0.0/0", "fromPort": 22}),
            True,
        ),
        T(
            "narrow",
            ev(
                "AuthorizeSecurityGroupIngress",
                EC2,
                request={"ipPermissions": {"items": [{"ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}}]}},
            ),
            False,
        ),
    ],
)
def security_group_open(event: Event) -> bool:
    if not ok(event) or from_iac(event):
        return False
    if _open_cidr(req(event, "cidrIp")):
        return True
    permissions = req(event, "ipPermissions") or {}
    for item in _listify(permissions.get("items") if isinstance(permissions, dict) else permissions):
        if not isinstance(item, dict):
            continue
        for ranges, key in (("ipRanges", "cidrIp"), ("ipv6Ranges", "cidrIpv6")):
            block = item.get(ranges) or {}
            for entry in _listify(block.get("items") if isinstance(block, dict) else block):
                if isinstance(entry, dict) and _open_cidr(entry.get(key)):
                    return True
    return False


@rule(
    id="irflow.ec2.network-acl-open",
    title="Network ACL allows inbound traffic from anywhere",
    severity=Severity.MEDIUM,
    finding_type="Policy:EC2/NetworkACLPermissive",
    sources={EC2},
    names={"CreateNetworkAclEntry", "ReplaceNetworkAclEntry"},
    tests=[
        T(
            "ingress from anywhere",
            ev(
                "CreateNetworkAclEntry", EC2, request={"cidrBlock": "0.0.0.0/0", "egress": False, "ruleAction": "allow"}
            ),
            True,
        ),
        T(
            "egress",
            ev("CreateNetworkAclEntry", EC2, request={"cidrBlock": "0.0.0.0/0", "egress": True, "ruleAction": "allow"}),
            False,
        ),
    ],
)
def network_acl_open(event: Event) -> bool:
    return (
        ok(event)
        and _open_cidr(req(event, "cidrBlock") or req(event, "ipv6CidrBlock"))
        and req(event, "egress") is False
        and req(event, "ruleAction") == "allow"
    )


def _added_items(event: Event, attribute: str) -> list[dict[str, Any]]:
    block = req(event, attribute) or {}
    add = block.get("add") if isinstance(block, dict) else None
    items = add.get("items") if isinstance(add, dict) else None
    return [i for i in _listify(items) if isinstance(i, dict)]


@rule(
    id="irflow.ec2.snapshot-shared",
    title="EBS snapshot shared publicly or with another account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:EC2/SnapshotShared",
    sources={EC2},
    names={"ModifySnapshotAttribute"},
    tests=[
        T(
            "public",
            ev(
                "ModifySnapshotAttribute",
                EC2,
                request={"createVolumePermission": {"add": {"items": [{"group": "all"}]}}},
            ),
            True,
        ),
        T(
            "other account",
            ev(
                "ModifySnapshotAttribute",
                EC2,
                request={"createVolumePermission": {"add": {"items": [{"userId": "999"}]}}},
            ),
            True,
        ),
        T(
            "none",
            ev(
                "ModifySnapshotAttribute",
                EC2,
                request={"createVolumePermission": {"add": {"items": [{"group": "none"}]}}},
            ),
            False,
        ),
    ],
)
def snapshot_shared(event: Event) -> bool:
    account = account_of(event)
    return ok(event) and any(
        i.get("group") == "all" or (i.get("userId") and i.get("userId") != account)
        for i in _added_items(event, "createVolumePermission")
    )


@rule(
    id="irflow.ec2.ami-shared",
    title="AMI shared publicly or with another account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:EC2/AMIShared",
    sources={EC2},
    names={"ModifyImageAttribute"},
    tests=[
        T(
            "public",
            ev("ModifyImageAttribute", EC2, request={"launchPermission": {"add": {"items": [{"group": "all"}]}}}),
            True,
        ),
        T(
            "other account",
            ev("ModifyImageAttribute", EC2, request={"launchPermission": {"add": {"items": [{"userId": "999"}]}}}),
            True,
        ),
        T("denied", ev("ModifyImageAttribute", EC2, error="UnauthorizedOperation"), False),
    ],
)
def ami_shared(event: Event) -> bool:
    account = account_of(event)
    return ok(event) and any(
        i.get("group") == "all" or (i.get("userId") and i.get("userId") != account)
        for i in _added_items(event, "launchPermission")
    )


@rule(
    id="irflow.rds.snapshot-shared",
    title="RDS snapshot shared publicly or with another account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:RDS/SnapshotShared",
    sources={RDS},
    names={"ModifyDBSnapshotAttribute", "ModifyDBClusterSnapshotAttribute"},
    tests=[
        T(
            "shared",
            ev("ModifyDBSnapshotAttribute", RDS, request={"attributeName": "restore", "valuesToAdd": ["999"]}),
            True,
        ),
        T(
            "nothing added",
            ev("ModifyDBSnapshotAttribute", RDS, request={"attributeName": "restore", "valuesToAdd": []}),
            False,
        ),
    ],
)
def rds_snapshot_shared(event: Event) -> bool:
    return ok(event) and req(event, "attributeName") == "restore" and bool(req(event, "valuesToAdd"))


@rule(
    id="irflow.rds.made-public",
    title="RDS instance or cluster made publicly accessible",
    severity=Severity.HIGH,
    finding_type="Policy:RDS/PubliclyAccessible",
    sources={RDS},
    names={"ModifyDBInstance", "ModifyDBCluster", "RestoreDBInstanceFromDBSnapshot"},
    tests=[
        T("public", ev("ModifyDBInstance", RDS, request={"publiclyAccessible": True}), True),
        T("private", ev("ModifyDBInstance", RDS, request={"publiclyAccessible": False}), False),
    ],
)
def rds_public(event: Event) -> bool:
    return ok(event) and req(event, "publiclyAccessible") is True


@rule(
    id="irflow.rds.deletion-protection-disabled",
    title="RDS deletion protection disabled",
    severity=Severity.MEDIUM,
    finding_type="Impact:RDS/DeletionProtectionDisabled",
    sources={RDS},
    names={"ModifyDBInstance", "ModifyDBCluster"},
    tests=[
        T("disabled", ev("ModifyDBInstance", RDS, request={"deletionProtection": False}), True),
        T("enabled", ev("ModifyDBInstance", RDS, request={"deletionProtection": True}), False),
    ],
)
def rds_deletion_protection(event: Event) -> bool:
    return ok(event) and req(event, "deletionProtection") is False


@rule(
    id="irflow.rds.master-password-changed",
    title="RDS master password changed",
    severity=Severity.MEDIUM,
    finding_type="CredentialAccess:RDS/MasterPasswordChanged",
    sources={RDS},
    names={"ModifyDBInstance", "ModifyDBCluster"},
    tests=[
        T("changed", ev("ModifyDBInstance", RDS, request={"masterUserPassword": "****"}), True),
        T("other change", ev("ModifyDBInstance", RDS, request={"allocatedStorage": 20}), False),
    ],
)
def rds_master_password(event: Event) -> bool:
    return ok(event) and "masterUserPassword" in (event.get("requestParameters") or {})


_simple(
    "irflow.rds.snapshot-exported",
    "RDS snapshot export to S3 started",
    Severity.MEDIUM,
    "Exfiltration:RDS/SnapshotExport",
    RDS,
    {"StartExportTask"},
)
_simple(
    "irflow.rds.automated-backup-deleted",
    "RDS automated backup deleted",
    Severity.MEDIUM,
    "Impact:RDS/AutomatedBackupDeleted",
    RDS,
    {"DeleteDBInstanceAutomatedBackup", "DeleteDBClusterAutomatedBackup"},
)


@rule(
    id="irflow.s3.bucket-policy-public",
    title="Resource policy grants access to everyone",
    severity=Severity.HIGH,
    finding_type="Policy:S3/BucketAnonymousAccessGranted",
    names={
        "PutBucketPolicy",
        "SetRepositoryPolicy",
        "PutKeyPolicy",
        "CreateElasticsearchDomain",
        "UpdateElasticsearchDomainConfig",
        "SetQueueAttributes",
        "CreateTopic",
        "SetTopicAttributes",
        "PutResourcePolicy",
        "AddPermission",
        "PutRepositoryPolicy",
    },
    tests=[
        T(
            "bucket to everyone",
            ev(
                "PutBucketPolicy",
                S3,
                request={
                    "bucketPolicy": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*"}]}
                },
            ),
            True,
        ),
        T(
            "everyone within the org",
            ev(
                "PutBucketPolicy",
                S3,
                request={
                    "bucketPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}},
                            }
                        ]
                    }
                },
            ),
            False,
        ),
        T(
            "service principal",
            ev(
                "PutBucketPolicy",
                S3,
                request={
                    "bucketPolicy": {
                        "Statement": [{"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "s3:*"}]
                    }
                },
            ),
            False,
        ),
    ],
)
def resource_policy_public(event: Event) -> bool:
    if not ok(event):
        return False
    params = event.get("requestParameters") or {}
    if not isinstance(params, dict):
        return False
    candidates = [
        params.get("bucketPolicy"),
        params.get("policyText"),
        params.get("policy"),
        params.get("accessPolicies"),
        params.get("resourcePolicy"),
    ]
    attributes = params.get("attributes")
    if isinstance(attributes, dict):
        candidates.append(attributes.get("Policy"))
    if params.get("blockPublicPolicy") is True:
        return False
    return any(public_statement(s) for policy in candidates for s in statements(policy))


_PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


@rule(
    id="irflow.s3.bucket-acl-public",
    title="S3 bucket ACL grants access to all users",
    severity=Severity.HIGH,
    finding_type="Policy:S3/BucketAnonymousAccessGranted",
    sources={S3},
    names={"PutBucketAcl", "PutObjectAcl"},
    tests=[
        T(
            "all users",
            ev(
                "PutBucketAcl",
                S3,
                request={
                    "AccessControlPolicy": {"AccessControlList": {"Grant": [{"Grantee": {"URI": _PUBLIC_GRANTEES[0]}}]}}
                },
            ),
            True,
        ),
        T("canned public", ev("PutBucketAcl", S3, request={"x-amz-acl": ["public-read"]}), True),
        T("private", ev("PutBucketAcl", S3, request={"x-amz-acl": ["private"]}), False),
    ],
)
def bucket_acl_public(event: Event) -> bool:
    if not ok(event):
        return False
    params = event.get("requestParameters") or {}
    canned = " ".join(str(v) for v in _listify(params.get("x-amz-acl")))
    if "public-read" in canned or "authenticated-read" in canned:
        return True
    return any(g in json.dumps(params.get("AccessControlPolicy") or {}) for g in _PUBLIC_GRANTEES)


@rule(
    id="irflow.codebuild.project-public",
    title="CodeBuild project made public",
    severity=Severity.HIGH,
    finding_type="Policy:CodeBuild/ProjectPublic",
    sources={"codebuild.amazonaws.com"},
    names={"UpdateProjectVisibility"},
    tests=[
        T(
            "public",
            ev("UpdateProjectVisibility", "codebuild.amazonaws.com", request={"projectVisibility": "PUBLIC_READ"}),
            True,
        ),
        T(
            "private",
            ev("UpdateProjectVisibility", "codebuild.amazonaws.com", request={"projectVisibility": "PRIVATE"}),
            False,
        ),
    ],
)
def codebuild_public(event: Event) -> bool:
    return ok(event) and req(event, "projectVisibility") == "PUBLIC_READ"


@rule(
    id="irflow.s3.copy-to-other-account",
    title="S3 object copied with a foreign KMS key or to another account's bucket",
    severity=Severity.MEDIUM,
    finding_type="Exfiltration:S3/CrossAccountCopy",
    sources={S3},
    names={"CopyObject"},
    tests=[
        T(
            "foreign kms key",
            ev(
                "CopyObject",
                S3,
                request={"x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:999999999999:key/k"},
            ),
            True,
        ),
        T("plain", ev("CopyObject", S3, request={"bucketName": "b"}), False),
    ],
)
def copy_to_other_account(event: Event) -> bool:
    if not ok(event):
        return False
    key = str(req(event, "x-amz-server-side-encryption-aws-kms-key-id") or "")
    account = account_of(event)
    if key.startswith("arn:") and account and key.split(":")[4] != account:
        return True
    expected = req(event, "x-amz-expected-bucket-owner")
    return bool(expected and account and expected != account)


_MIRROR = {
    f"{verb}TrafficMirror{thing}"
    for verb in ("Create", "Delete", "Modify")
    for thing in ("Session", "Target", "Filter", "FilterRule", "FilterNetworkServices")
}


@rule(
    id="irflow.ec2.traffic-mirroring",
    title="VPC traffic mirroring configured (attempts included)",
    severity=Severity.MEDIUM,
    finding_type="Exfiltration:EC2/TrafficMirroring",
    sources={EC2},
    names=_MIRROR,
    tests=[
        T("session", ev("CreateTrafficMirrorSession", EC2), True),
        T("failed session still counts", ev("CreateTrafficMirrorSession", EC2, error="Client.NotSupported"), True),
        T("describe", ev("DescribeTrafficMirrorTargets", EC2), False),
    ],
)
def traffic_mirroring(event: Event) -> bool:
    return True


# ---------------------------------------------------------------------------------------------------------
# impact


_simple(
    rule_id="irflow.kms.key-disabled-or-deleted",
    title="KMS key scheduled for deletion or disabled",
    severity=Severity.HIGH,
    finding_type="Impact:KMS/KeyDeletion",
    source="kms.amazonaws.com",
    names={"ScheduleKeyDeletion", "DisableKey"},
    tests=[
        T("scheduled", ev("ScheduleKeyDeletion", "kms.amazonaws.com", request={"keyId": "k"}), True),
        T("not found", ev("DisableKey", "kms.amazonaws.com", error="NotFoundException"), False),
    ],
    except_services=True,
)


_simple(
    rule_id="irflow.route53.domain-transfer",
    title="Route 53 domain transferred out or transfer lock removed",
    severity=Severity.HIGH,
    finding_type="Impact:Route53/DomainTransfer",
    source="route53domains.amazonaws.com",
    names={"TransferDomainToAnotherAwsAccount", "DisableDomainTransferLock", "TransferDomain"},
    tests=[
        T("lock off", ev("DisableDomainTransferLock", "route53domains.amazonaws.com"), True),
        T("denied", ev("DisableDomainTransferLock", "route53domains.amazonaws.com", error="AccessDenied"), False),
    ],
)


@rule(
    id="irflow.s3.ransom-note",
    title="Possible ransom note uploaded to S3",
    severity=Severity.HIGH,
    finding_type="Impact:S3/RansomNote",
    sources={S3},
    names={"PutObject"},
    tests=[
        T("note", ev("PutObject", S3, request={"key": "README_TO_RESTORE_FILES.txt"}), True),
        T("ordinary", ev("PutObject", S3, request={"key": "data/report.csv"}), False),
    ],
)
def ransom_note(event: Event) -> bool:
    key = str(req(event, "key") or "").lower()
    return ok(event) and any(
        w in key for w in ("ransom", "decrypt", "restore_files", "readme_to", "how_to_recover", "recover_files")
    )


@rule(
    id="irflow.s3.sse-c-copy",
    title="S3 object rewritten with a customer-provided encryption key (SSE-C)",
    severity=Severity.HIGH,
    finding_type="Impact:S3/RansomwareClientSideEncryption",
    sources={S3},
    names={"CopyObject", "PutObject"},
    tests=[
        T(
            "sse-c copy",
            ev("CopyObject", S3, request={"key": "k", "x-amz-server-side-encryption-customer-algorithm": "AES256"}),
            True,
        ),
        T("plain copy", ev("CopyObject", S3, request={"key": "k"}), False),
    ],
)
def sse_c_copy(event: Event) -> bool:
    return ok(event) and bool(req(event, "x-amz-server-side-encryption-customer-algorithm"))


_simple(
    "irflow.rds.iam-role-added",
    "IAM role attached to an RDS instance or cluster",
    Severity.LOW,
    "Persistence:RDS/IAMRoleAdded",
    RDS,
    {"AddRoleToDBInstance", "AddRoleToDBCluster"},
)
_simple(
    "irflow.rds.security-group-ingress",
    "RDS DB security group ingress authorized",
    Severity.MEDIUM,
    "Policy:RDS/SecurityGroupIngress",
    RDS,
    {"AuthorizeDBSecurityGroupIngress"},
)
_simple(
    "irflow.account.region-enabled",
    "AWS Region enabled for the account",
    Severity.LOW,
    "Impact:IAMUser/RegionEnabled",
    "account.amazonaws.com",
    {"EnableRegion"},
)


@rule(
    id="irflow.rds.snapshot-copied-cross-region",
    title="RDS snapshot copied from another Region",
    severity=Severity.LOW,
    finding_type="Exfiltration:RDS/SnapshotCopiedCrossRegion",
    sources={RDS},
    names={"CopyDBSnapshot", "CopyDBClusterSnapshot"},
    tests=[
        T("cross region", ev("CopyDBSnapshot", RDS, request={"sourceRegion": "eu-west-1"}), True),
        T("same region", ev("CopyDBSnapshot", RDS, request={"sourceDBSnapshotIdentifier": "s"}), False),
    ],
)
def rds_snapshot_cross_region(event: Event) -> bool:
    source = req(event, "sourceRegion")
    return ok(event) and bool(source) and source != event.get("awsRegion")


@rule(
    id="irflow.account.contact-discovery",
    title="Account details and contacts read outside the console",
    severity=Severity.INFORMATIONAL,
    finding_type="Discovery:IAMUser/AccountDiscovery",
    sources={"account.amazonaws.com", "organizations.amazonaws.com"},
    names={"GetAlternateContact", "GetContactInformation", "DescribeAccount"},
    tests=[
        T("contacts", ev("GetAlternateContact", "account.amazonaws.com"), True),
        T("console", ev("GetAlternateContact", "account.amazonaws.com", userAgent="console.amazonaws.com"), False),
    ],
)
def contact_discovery(event: Event) -> bool:
    return "console.amazonaws.com" not in (event.get("userAgent") or "") and not is_service(event)


def _foreign_account_principal(policy: Any, account: str | None) -> bool:
    """An Allow statement names an AWS principal in another account ("*" is the public-policy rule's)."""
    for statement in statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        for p in principals(statement):
            owner = p.split(":")[4] if p.startswith("arn:aws:iam::") else p if p.isdigit() else None
            if owner and account and owner != account:
                return True
    return False


@rule(
    id="irflow.s3.bucket-policy-foreign-account",
    title="S3 bucket policy grants access to another AWS account",
    severity=Severity.HIGH,
    finding_type="Exfiltration:S3/BucketPolicyBackdoor",
    sources={S3},
    names={"PutBucketPolicy"},
    tests=[
        T(
            "other account",
            ev(
                "PutBucketPolicy",
                S3,
                request={
                    "bucketPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                                "Action": "s3:*",
                            }
                        ]
                    }
                },
            ),
            True,
        ),
        T(
            "own account",
            ev(
                "PutBucketPolicy",
                S3,
                request={
                    "bucketPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                                "Action": "s3:*",
                            }
                        ]
                    }
                },
            ),
            False,
        ),
        T(
            "service",
            ev(
                "PutBucketPolicy",
                S3,
                request={
                    "bucketPolicy": {
                        "Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}}]
                    }
                },
            ),
            False,
        ),
    ],
)
def bucket_policy_foreign_account(event: Event) -> bool:
    return ok(event) and _foreign_account_principal(req(event, "bucketPolicy"), account_of(event))
