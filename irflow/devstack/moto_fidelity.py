"""Corrections to moto where it behaves unlike AWS in ways irflow's checks depend on.

These patch the stand-in, never irflow: product code is written against AWS's documented behaviour.
"""

from __future__ import annotations

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _eni_groups_are_the_enis_own()
    _shutdown_behaviour_is_applied()
    _deregistered_targets_drain()
    from irflow.devstack import moto_fidelity_ebs, moto_fidelity_findings, moto_fidelity_rds

    moto_fidelity_rds.apply()
    moto_fidelity_ebs.apply()
    moto_fidelity_findings.apply()


def _eni_groups_are_the_enis_own() -> None:
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    # moto 5.x reports an attached ENI's groups as the union of its own and the instance's launch
    # groups, so an ENI moved into a quarantine group still "has" its old groups. In AWS an ENI's
    # groups are exactly the ENI's own (ModifyNetworkInterfaceAttribute replaces them).
    NetworkInterface.group_set = property(lambda self: list(self._group_set))  # type: ignore[assignment]


def _shutdown_behaviour_is_applied() -> None:
    from moto.ec2.responses.instances import InstanceResponse

    # moto 5.2.5 drops ModifyInstanceAttribute(InstanceInitiatedShutdownBehavior=...) into its
    # security-group handler (which clears the instance's groups); AWS sets the attribute.
    original = InstanceResponse._dot_value_instance_attribute_handler

    def handler(self) -> bool:
        value = self._get_param("InstanceInitiatedShutdownBehavior.Value")
        if value is None:
            return original(self)
        self.ec2_backend.modify_instance_attribute(
            self._get_param("InstanceId"), "instance_initiated_shutdown_behavior", value
        )
        return True

    InstanceResponse._dot_value_instance_attribute_handler = handler


def _deregistered_targets_drain() -> None:
    from moto.elbv2.models import ELBv2Backend, FakeTargetGroup

    # In AWS a deregistered target stays in DescribeTargetHealth as "draining" for the deregistration
    # delay (300 s by default); registering it again ends the draining. moto drops it at once.
    original_register, original_health = FakeTargetGroup.register, ELBv2Backend.describe_target_health

    def deregister(self, targets):
        for target in targets:
            if target["Id"] in self.targets:
                self.terminated_targets[target["Id"]] = self.targets.pop(target["Id"])

    def register(self, targets):
        original_register(self, targets)
        for target in targets:
            self.terminated_targets.pop(target["Id"], None)

    def describe_target_health(self, target_group_arn, targets):
        group = self.target_groups.get(target_group_arn)
        if not targets and group is not None:
            targets = list(group.targets.values()) + list(group.terminated_targets.values())
        return original_health(self, target_group_arn, targets)

    FakeTargetGroup.deregister = deregister
    FakeTargetGroup.register = register
    ELBv2Backend.describe_target_health = describe_target_health
