"""Execution (ATT&CK TA0002): a new startup script for an instance, and commands or sessions through SSM.

irflow's own rules, written like a team's (docs/rules.md); their test events are in execution.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    EC2_SERVICE,
    SSM_SERVICE,
    Event,
    Severity,
    call_rule,
    rule,
    succeeded,
)


@rule(
    id="irflow.ec2.user-data-modified",
    title="EC2 instance user data (startup script) modified",
    severity=Severity.HIGH,
    finding_type="Execution:EC2/UserDataModified",
    sources={EC2_SERVICE},
    names={"ModifyInstanceAttribute"},
)
def user_data_modified(event: Event) -> bool:
    params = event.get("requestParameters") or {}
    return succeeded(event) and ("userData" in params or params.get("attribute") == "userData")


call_rule(
    id="irflow.ssm.command-or-session",
    title="SSM command sent to instances or session started",
    severity=Severity.LOW,
    finding_type="Execution:EC2/SSMCommand",
    sources={SSM_SERVICE},
    names={"SendCommand", "StartSession"},
    by_aws_services=False,
)
