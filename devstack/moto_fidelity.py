"""Corrections to moto where it behaves unlike AWS in ways irflow's checks depend on.

These patch the stand-in, never irflow: product code is written against AWS's documented behaviour.
"""

from __future__ import annotations


def apply() -> None:
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    # moto 5.x reports an attached ENI's groups as the union of its own and the instance's launch
    # groups, so an ENI moved into a quarantine group still "has" its old groups. In AWS an ENI's
    # groups are exactly the ENI's own (ModifyNetworkInterfaceAttribute replaces them).
    NetworkInterface.group_set = property(lambda self: list(self._group_set))  # type: ignore[assignment]
