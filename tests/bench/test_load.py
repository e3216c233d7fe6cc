"""bench.load's burst is what it claims: every resource named, the given share of repeats (half the same message
again, half the same finding updated), and the counts each incident should hold; its baseline makes the
recorded calls but the evidence ones."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

from bench.load import Resource, make_burst
from bench.load_baseline import plan

WORKLOAD = SimpleNamespace(account_id="123456789012", region="us-east-1")


def test_a_burst_names_every_resource_and_repeats_the_share_asked_half_redelivered_half_updated():
    resources = [Resource("instance", f"i-{n:017x}") for n in range(6)] + [Resource("user", "mallory", "AKIAX")]
    burst = make_burst(WORKLOAD, resources, findings=40, duplicate_share=0.3)

    details = [json.loads(body)["detail"] for body in burst.bodies]
    assert len(details) == 40
    assert set(burst.deliveries) == {r.resource_id for r in resources}
    assert sum(burst.deliveries.values()) == 40
    ids = Counter(d["id"] for d in details)
    versions = Counter((d["id"], d["updatedAt"], d["service"]["count"]) for d in details)
    assert len(ids) == 28  # 70% distinct findings
    assert sum(n - 1 for n in versions.values()) == 6  # the same message again: counted, absorbed once
    assert len(versions) - len(ids) == 6  # the same finding updated: a new version, absorbed
    assert sum(len(v) for v in burst.versions.values()) == len(versions)
    user = resources[-1].resource_id
    assert user != "mallory", "a user's incident is searched by the identity's hash"


def test_the_baseline_makes_the_recorded_calls_reads_first_and_leaves_out_what_it_has_no_call_for():
    reads, writes, left = plan(
        {"ec2:DescribeInstances": 3, "ec2:ModifyNetworkInterfaceAttribute": 2, "iam:UpdateAccessKey": 1, "x:Y": 1}
    )
    assert reads == {"ec2:DescribeInstances": 3}
    assert writes == [
        ("ec2:ModifyNetworkInterfaceAttribute", 0),
        ("ec2:ModifyNetworkInterfaceAttribute", 1),
        ("iam:UpdateAccessKey", 0),
    ]
    assert left == ["x:Y"]
