"""Network isolation cuts live connections: every interface goes through the allow-all "untrack" group first, then
into quarantine, in that order. Swapping straight to quarantine leaves tracked flows (an attacker's open shell)
alive, and the end state alone cannot tell the two apart: the calls themselves are recorded, as AWS saw them."""

from __future__ import annotations

import threading

import boto3
import pytest

from activities import aws
from activities.ec2_containment import isolate_network
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import quarantine_groups

EVERYONE = {("IpRanges", "CidrIp", "0.0.0.0/0"), ("Ipv6Ranges", "CidrIpv6", "::/0")}


class GroupChanges:
    """Every ModifyNetworkInterfaceAttribute the activities make, in the order they made them, per interface."""

    def __init__(self) -> None:
        self.by_interface: dict[str, list[list[str]]] = {}
        self._lock = threading.Lock()  # interfaces are isolated side by side, on threads

    def __call__(self, params: dict, **_) -> None:
        with self._lock:
            self.by_interface.setdefault(params["NetworkInterfaceId"], []).append(list(params.get("Groups") or []))


@pytest.fixture
def group_changes(workload) -> GroupChanges:
    # On the activities' session before any client is made from it: every client copies its handlers. The session
    # is forgotten with the test's moto (tests/conftest.py `aws`), and the handler with it.
    aws.reset_clients()
    changes = GroupChanges()
    aws.process_session().events.register("before-parameter-build.ec2.ModifyNetworkInterfaceAttribute", changes)
    return changes


def _group(workload, group_id: str) -> dict:
    ec2 = boto3.client("ec2", region_name=workload.region)
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def _opens_everything(permissions: list[dict]) -> bool:
    """All protocols, all ports, to and from every IPv4 and IPv6 address: flows through it are not tracked."""
    everyone = {
        (kind, key, r[key])
        for p in permissions
        if p["IpProtocol"] == "-1"
        for kind, key in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"))
        for r in p.get(kind, [])
    }
    return everyone >= EVERYONE


def test_every_interface_goes_through_the_allow_all_untrack_group_then_quarantine(workload, target, group_changes):
    step = step_input(target)
    interfaces = sorted(eni.network_interface_id for eni in step.prior.network_interfaces)
    assert len(interfaces) == 2

    assert isolate_network(step).changed is True

    [quarantine] = quarantine_groups(workload)
    assert sorted(group_changes.by_interface) == interfaces, "every interface was moved, nothing else"
    for eni in interfaces:
        calls = group_changes.by_interface[eni]
        assert len(calls) == 2, f"{eni} was moved twice, not {calls}"
        first, then = calls
        assert then == [quarantine["GroupId"]], f"{eni} ends in the quarantine group alone"
        assert len(first) == 1 and first != then, f"{eni} first went into one other group alone, not {first}"
        untrack = _group(workload, first[0])
        assert _opens_everything(untrack["IpPermissions"]) and _opens_everything(untrack["IpPermissionsEgress"]), (
            f"{eni} went first into {untrack['GroupId']}, which does not allow all traffic both ways"
        )


def test_an_interface_already_in_quarantine_is_not_moved_again(workload, target, group_changes):
    step = step_input(target)
    isolate_network(step)
    moved = {eni: len(calls) for eni, calls in group_changes.by_interface.items()}
    assert set(moved.values()) == {2}, "untrack, then quarantine, once each"

    assert isolate_network(step).changed is False
    assert {eni: len(calls) for eni, calls in group_changes.by_interface.items()} == moved, (
        "a second isolation moves no interface through the untrack group again: it would reopen it for a moment"
    )
