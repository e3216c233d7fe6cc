"""Undoing isolation when the instance changed meanwhile: an interface deleted during the incident is reported gone,
and every other interface still gets its own groups back (moto)."""

from __future__ import annotations

import boto3

from activities.ec2_containment import isolate_network, restore_network
from tests.activities.ec2_support import (
    step_input,
    target_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import observed_instance


def test_an_interface_deleted_meanwhile_is_reported_gone_and_the_others_are_restored(workload, target):
    step = step_input(target)
    before = observed_instance(workload)["enis"]
    primary, secondary = sorted(step.prior.network_interfaces, key=lambda eni: eni.device_index)
    assert isolate_network(step).changed is True

    ec2 = boto3.client("ec2", region_name=workload.region)
    attachment = ec2.describe_network_interfaces(NetworkInterfaceIds=[secondary.network_interface_id])
    ec2.detach_network_interface(AttachmentId=attachment["NetworkInterfaces"][0]["Attachment"]["AttachmentId"])
    ec2.delete_network_interface(NetworkInterfaceId=secondary.network_interface_id)

    result = restore_network(step)
    assert result.changed is True
    assert result.detail == {"restored": [primary.network_interface_id], "gone": [secondary.network_interface_id]}
    assert observed_instance(workload)["enis"] == {
        primary.network_interface_id: before[primary.network_interface_id]
    }, "the primary interface is back in its own groups"
