"""Pure decisions about an EC2 incident, unit-tested without AWS or Temporal."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.ec2 import InstanceContext
    from models.finding import Finding, Severity
    from models.incident import ResponsePolicy

from workflows.playbook import ContainmentPlan


def incident_severity(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), key=lambda s: s.rank)


def plan_ec2_containment(findings: list[Finding], context: InstanceContext, policy: ResponsePolicy) -> ContainmentPlan:
    finding = max(findings, key=lambda f: f.severity_score)
    severity = incident_severity(findings)
    reasons = [f"{finding.type}: GuardDuty severity {finding.severity_score} ({finding.severity})"]
    requires_approval = False
    if severity.rank < policy.auto_contain_min_severity.rank:
        requires_approval = True
        reasons.append(
            f"severity {severity} is below the auto-containment threshold {policy.auto_contain_min_severity}: "
            "containment waits for an analyst"
        )
    if context.tags.get(policy.manual_containment_tag, "").lower() == "manual":
        requires_approval = True
        reasons.append(f"instance is tagged {policy.manual_containment_tag}=manual: containment waits for an analyst")
    if any(f.sample for f in findings):
        requires_approval = True
        reasons.append("GuardDuty marks this as a sample finding: containment waits for an analyst")
    if context.state != "running":
        reasons.append(f"instance is {context.state}, not running")
    if context.auto_scaling:
        reasons.append(
            f"member of Auto Scaling group {context.auto_scaling.group_name}: it will be detached with the desired "
            "capacity decremented, so no replacement launches while the incident is open"
        )
    if context.target_groups:
        reasons.append(f"registered in {len(context.target_groups)} target group(s): it will be deregistered")
    if context.instance_profile:
        roles = ", ".join(context.instance_profile.role_names) or "no role"
        reasons.append(
            f"instance profile {context.instance_profile.profile_name} ({roles}): profile replaced and sessions "
            "issued before containment revoked; other instances using the role refresh their credentials"
        )
    reasons.append(
        f"{len(context.network_interfaces)} network interface(s) in {', '.join(context.vpc_ids) or 'no VPC'} "
        f"will be isolated; {len(context.volumes)} volume(s) will be snapshotted"
    )
    return ContainmentPlan(severity=severity, requires_approval=requires_approval, reasons=reasons)
