"""Lateral movement (ATT&CK TA0008): SSH keys pushed through EC2 Instance Connect and the serial console
switched on.

irflow's own rules, written like a team's (docs/rules.md); their test events are in lateral_movement.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    EC2_SERVICE,
    Severity,
    call_rule,
)

call_rule(
    id="irflow.ec2-instance-connect.ssh-key-pushed",
    title="SSH public key pushed through EC2 Instance Connect",
    severity=Severity.MEDIUM,
    finding_type="LateralMovement:EC2/InstanceConnectKeyPushed",
    sources={"ec2-instance-connect.amazonaws.com"},
    names={"SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"},
)


call_rule(
    id="irflow.ec2.serial-console-enabled",
    title="EC2 serial console access enabled",
    severity=Severity.MEDIUM,
    finding_type="LateralMovement:EC2/SerialConsoleEnabled",
    sources={EC2_SERVICE},
    names={"EnableSerialConsoleAccess"},
)
