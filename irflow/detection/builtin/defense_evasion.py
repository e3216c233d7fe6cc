"""Defense evasion (ATT&CK TA0005): logging and monitoring switched off (CloudTrail, GuardDuty, Config, flow
logs, Macie, Security Hub...), encryption and Block Public Access removed, and firewalls opened to the world
(security groups, network ACLs: T1562.007).

irflow's own rules, written like a team's (docs/rules.md); their test events are in defense_evasion.events.json.
"""

from __future__ import annotations

from typing import Any

from irflow.detection.authoring import (
    BEDROCK_SERVICE,
    CLOUDTRAIL_SERVICE,
    EC2_SERVICE,
    GUARDDUTY_SERVICE,
    RDS_SERVICE,
    S3_SERVICE,
    Event,
    Severity,
    as_list,
    call_rule,
    made_by_infrastructure_as_code,
    request_parameter,
    rule,
    succeeded,
)


def _open_cidr(value: Any) -> bool:
    """Any /0 (AWS ignores the host bits: 208.236.235.254/0 is the whole internet)."""
    return isinstance(value, str) and value.endswith("/0")


@rule(
    id="irflow.cloudtrail.trail-stopped",
    title="CloudTrail logging stopped or trail deleted",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/CloudTrailLoggingDisabled",
    sources={CLOUDTRAIL_SERVICE},
    names={"StopLogging", "DeleteTrail"},
)
def trail_stopped(event: Event) -> bool:
    # Access denied is still an attempt worth an alert; a bad trail name is not.
    return event.get("errorCode") in (None, "AccessDenied", "AccessDeniedException")


@rule(
    id="irflow.cloudtrail.event-selectors-reduced",
    title="CloudTrail event selectors stop recording management events",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/CloudTrailEventSelectorsChanged",
    sources={CLOUDTRAIL_SERVICE},
    names={"PutEventSelectors"},
)
def event_selectors_reduced(event: Event) -> bool:
    if not succeeded(event):
        return False
    for selector in as_list(request_parameter(event, "eventSelectors")):
        if isinstance(selector, dict) and (
            selector.get("includeManagementEvents") is False
            or selector.get("readWriteType") in ("ReadOnly", "WriteOnly")
            or selector.get("excludeManagementEventSources")
        ):
            return True
    for selector in as_list(request_parameter(event, "advancedEventSelectors")):
        for field in as_list(selector.get("fieldSelectors") if isinstance(selector, dict) else None):
            if (
                isinstance(field, dict)
                and field.get("field") == "eventCategory"
                and "Management" not in (field.get("equals") or [])
            ):
                return True
    return False


@rule(
    id="irflow.guardduty.detector-disabled",
    title="GuardDuty detector deleted or disabled",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/GuardDutyDisabled",
    sources={GUARDDUTY_SERVICE},
    names={
        "DeleteDetector",
        "UpdateDetector",
        "DisassociateFromMasterAccount",
        "DisassociateFromAdministratorAccount",
        "StopMonitoringMembers",
        "DeleteMembers",
    },
)
def guardduty_disabled(event: Event) -> bool:
    if not succeeded(event):
        return False
    if event.get("eventName") == "UpdateDetector":
        return request_parameter(event, "enable") is False
    return True


call_rule(
    id="irflow.guardduty.ipset-changed",
    title="GuardDuty trusted IP list created or updated",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/GuardDutyTrustedIPList",
    sources={GUARDDUTY_SERVICE},
    names={"CreateIPSet", "UpdateIPSet"},
)


call_rule(
    id="irflow.ec2.flow-logs-deleted",
    title="VPC flow logs deleted",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:EC2/FlowLogsDeleted",
    sources={EC2_SERVICE},
    names={"DeleteFlowLogs"},
)


call_rule(
    id="irflow.route53resolver.query-logs-deleted",
    title="Route 53 Resolver query logging deleted",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/DNSLogsDeleted",
    sources={"route53resolver.amazonaws.com"},
    names={"DeleteResolverQueryLogConfig", "DisassociateResolverQueryLogConfig"},
)


call_rule(
    id="irflow.config.recorder-stopped",
    title="AWS Config recorder stopped or deleted",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/ConfigDisabled",
    sources={"config.amazonaws.com"},
    names={"StopConfigurationRecorder", "DeleteConfigurationRecorder", "DeleteDeliveryChannel"},
)


call_rule(
    id="irflow.ec2.ebs-default-encryption-disabled",
    title="EBS encryption by default disabled",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:EC2/EBSEncryptionDisabled",
    sources={EC2_SERVICE},
    names={"DisableEbsEncryptionByDefault"},
)


@rule(
    id="irflow.organizations.leave",
    title="Account tried to leave its AWS Organization",
    severity=Severity.HIGH,
    finding_type="DefenseEvasion:IAMUser/LeaveOrganization",
    sources={"organizations.amazonaws.com"},
    names={"LeaveOrganization"},
)
def organizations_leave(event: Event) -> bool:
    return True  # a denied attempt says as much as a successful one


call_rule(
    id="irflow.macie.disabled",
    title="Amazon Macie disabled, paused or reconfigured",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/MacieDisabled",
    sources={"macie2.amazonaws.com", "macie.amazonaws.com"},
    names={
        "DisableMacie",
        "UpdateMacieSession",
        "DisableOrganizationAdminAccount",
        "DisassociateFromMasterAccount",
        "DisassociateFromAdministratorAccount",
        "DeleteMember",
    },
)


call_rule(
    id="irflow.securityhub.disabled",
    title="Security Hub disabled or findings suppressed",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/SecurityHubEvasion",
    sources={"securityhub.amazonaws.com"},
    names={"DisableSecurityHub", "BatchDisableStandards", "DeleteInsight", "UpdateFindings", "DeleteActionTarget"},
)


call_rule(
    id="irflow.waf.disassociated",
    title="WAF web ACL disassociated from a resource",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/WAFDisassociated",
    sources={"wafv2.amazonaws.com"},
    names={"DisassociateWebACL"},
)


call_rule(
    id="irflow.bedrock.logging-deleted",
    title="Bedrock model invocation logging deleted",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/BedrockLoggingDeleted",
    sources={BEDROCK_SERVICE},
    names={"DeleteModelInvocationLoggingConfiguration"},
)


call_rule(
    id="irflow.bedrock.guardrail-changed",
    title="Bedrock guardrail updated or deleted",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:IAMUser/BedrockGuardrailChanged",
    sources={BEDROCK_SERVICE},
    names={"UpdateGuardrail", "DeleteGuardrail"},
)


call_rule(
    id="irflow.rds.activity-stream-stopped",
    title="RDS database activity stream stopped",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:RDS/ActivityStreamStopped",
    sources={RDS_SERVICE},
    names={"StopActivityStream"},
)


call_rule(
    id="irflow.s3.bucket-encryption-deleted",
    title="S3 bucket default encryption removed",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:S3/BucketEncryptionDeleted",
    sources={S3_SERVICE},
    names={"DeleteBucketEncryption"},
)


@rule(
    id="irflow.s3.bucket-logging-disabled",
    title="S3 server access logging disabled",
    severity=Severity.MEDIUM,
    finding_type="DefenseEvasion:S3/BucketLoggingDisabled",
    sources={S3_SERVICE},
    names={"PutBucketLogging"},
)
def bucket_logging_disabled(event: Event) -> bool:
    status = request_parameter(event, "BucketLoggingStatus")
    return succeeded(event) and isinstance(status, dict) and "LoggingEnabled" not in status


@rule(
    id="irflow.s3.public-access-block-removed",
    title="S3 Block Public Access removed or weakened",
    severity=Severity.HIGH,
    finding_type="Policy:S3/BlockPublicAccessDisabled",
    sources={S3_SERVICE},
    names={
        "DeleteBucketPublicAccessBlock",
        "PutBucketPublicAccessBlock",
        "DeleteAccountPublicAccessBlock",
        "PutAccountPublicAccessBlock",
    },
)
def public_access_block_removed(event: Event) -> bool:
    if not succeeded(event):
        return False
    if event.get("eventName", "").startswith("Delete"):
        return True
    config = request_parameter(event, "PublicAccessBlockConfiguration")
    return isinstance(config, dict) and any(v is False for v in config.values())


@rule(
    id="irflow.ec2.security-group-open-to-world",
    title="Security group ingress opened to 0.0.0.0/0 or ::/0",
    severity=Severity.HIGH,
    finding_type="Policy:EC2/SecurityGroupOpenToWorld",
    sources={EC2_SERVICE},
    names={"AuthorizeSecurityGroupIngress"},
)
def security_group_open(event: Event) -> bool:
    if not succeeded(event) or made_by_infrastructure_as_code(event):
        return False
    if _open_cidr(request_parameter(event, "cidrIp")):
        return True
    permissions = request_parameter(event, "ipPermissions") or {}
    for item in as_list(permissions.get("items") if isinstance(permissions, dict) else permissions):
        if not isinstance(item, dict):
            continue
        for ranges, key in (("ipRanges", "cidrIp"), ("ipv6Ranges", "cidrIpv6")):
            block = item.get(ranges) or {}
            for entry in as_list(block.get("items") if isinstance(block, dict) else block):
                if isinstance(entry, dict) and _open_cidr(entry.get(key)):
                    return True
    return False


@rule(
    id="irflow.ec2.network-acl-open",
    title="Network ACL allows inbound traffic from anywhere",
    severity=Severity.MEDIUM,
    finding_type="Policy:EC2/NetworkACLPermissive",
    sources={EC2_SERVICE},
    names={"CreateNetworkAclEntry", "ReplaceNetworkAclEntry"},
)
def network_acl_open(event: Event) -> bool:
    return (
        succeeded(event)
        and _open_cidr(request_parameter(event, "cidrBlock") or request_parameter(event, "ipv6CidrBlock"))
        and request_parameter(event, "egress") is False
        and request_parameter(event, "ruleAction") == "allow"
    )


call_rule(
    id="irflow.rds.security-group-ingress",
    title="RDS DB security group ingress authorized",
    severity=Severity.MEDIUM,
    finding_type="Policy:RDS/SecurityGroupIngress",
    sources={RDS_SERVICE},
    names={"AuthorizeDBSecurityGroupIngress"},
)
