"""Lateral movement (ATT&CK TA0008): SSH keys pushed through EC2 Instance Connect and the serial console
switched on.

irflow's own rules, written like a team's (docs/rules.md); their test events are in lateral_movement.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    EC2_SERVICE,
    Event,
    Severity,
    rule,
    succeeded,
)


@rule(
    id="irflow.ec2-instance-connect.ssh-key-pushed",
    title="SSH public key pushed through EC2 Instance Connect",
    severity=Severity.MEDIUM,
    finding_type="LateralMovement:EC2/InstanceConnectKeyPushed",
    sources={"ec2-instance-connect.amazonaws.com"},
    names={"SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"},
)
def ec2_instance_connect_ssh_key_pushed(event: Event) -> bool:
    return succeeded(event)


@rule(
    id="irflow.ec2.serial-console-enabled",
    title="EC2 serial console access enabled",
    severity=Severity.MEDIUM,
    finding_type="LateralMovement:EC2/SerialConsoleEnabled",
    sources={EC2_SERVICE},
    names={"EnableSerialConsoleAccess"},
)
def ec2_serial_console_enabled(event: Event) -> bool:
    return succeeded(event)
