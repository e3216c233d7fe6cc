"""The interfaces' groups before isolation survive a replay: `isolate_network` records them on the instance before it
moves any interface, and a first look taken again (a worker died after isolating, before its workflow task completed:
the look runs again) reads the record, not the quarantined interfaces. The undo puts the groups back and removes
the record. (With real processes and SIGKILL: tests/e2e/test_worker_kill.py.)"""

from __future__ import annotations

import boto3

from activities.ec2_containment import isolate_network, restore_network
from activities.ec2_context import PRIOR_TAG, look_at_instance, prior_record_tags, recorded_groups
from irflow.models.ec2 import Ec2StepInput, NetworkInterfaceState
from tests.activities.ec2_support import INCIDENT_ID, ISSUED_BEFORE, ec2_target


def _groups(workload) -> dict[str, list[str]]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    instance = ec2.describe_instances(InstanceIds=[workload.instance_id])["Reservations"][0]["Instances"][0]
    return {e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"]) for e in instance["NetworkInterfaces"]}


def _tags(workload) -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name=workload.region)
    instance = ec2.describe_instances(InstanceIds=[workload.instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def test_a_look_again_after_isolation_sees_the_groups_from_before(workload):
    target = ec2_target(workload, workload.instance_id)
    before, tags_before = _groups(workload), _tags(workload)
    first = look_at_instance(target)
    isolate_network(Ec2StepInput(target=target, prior=first, issued_before=ISSUED_BEFORE))
    assert _groups(workload) != before, "isolated"

    again = look_at_instance(target)
    assert {e.network_interface_id: e.group_ids for e in again.network_interfaces} == before
    assert again.tags == first.tags == tags_before, "the record is irflow's bookkeeping, not the instance's own tags"
    # isolating again (a replay, the guard re-applying) keeps the first record
    isolate_network(Ec2StepInput(target=target, prior=again, issued_before=ISSUED_BEFORE))
    assert recorded_groups(_tags(workload), INCIDENT_ID) == before

    restore_network(Ec2StepInput(target=target, prior=again))
    assert _groups(workload) == before
    assert _tags(workload) == tags_before, "the record goes with the undo"


def test_another_incidents_record_is_not_this_ones(workload):
    target = ec2_target(workload, workload.instance_id)
    first = look_at_instance(target)
    isolate_network(Ec2StepInput(target=target.model_copy(update={"incident_id": "inc-older"}), prior=first))
    later = look_at_instance(target)
    assert all(e.group_ids != first.network_interfaces[0].group_ids for e in later.network_interfaces[:1])
    assert not any(k.startswith(PRIOR_TAG) for k in later.tags)


def test_a_long_record_is_split_across_tags_and_read_back_whole():
    enis = [
        NetworkInterfaceState(
            network_interface_id=f"eni-{n:017x}", vpc_id="vpc-1", group_ids=[f"sg-{g:017x}" for g in range(16)]
        )
        for n in range(3)
    ]
    tags = prior_record_tags("inc-1", enis)
    assert len(tags) > 1 and all(len(v) <= 256 and len(k) <= 128 for k, v in tags.items())
    assert recorded_groups({**tags, "Name": "web"}, "inc-1") == {e.network_interface_id: e.group_ids for e in enis}
    assert recorded_groups(tags, "inc-2") is None
