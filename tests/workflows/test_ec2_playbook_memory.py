"""Memory that is really captured, end to end through Temporal with moto as the account (tests/fake_agent.py plays the
instance's SSM agent):

- with forensic egress (the dev stack's default), the isolated instance can reach only the VPC endpoints on 443 and
  keeps a profile limited to SSM and its own memory folder; its image's SHA-256 is in the signed manifest, and
  `irflow verify` passes;
- without it, memory is skipped (the default) and the report says exactly why, or taken before isolation: the
  capture runs while the instance is still on its network, and isolation follows at the deadline even when the
  capture hangs (the time-skipping server lets ten minutes pass at once).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta

import boto3
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import all_activities
from irflow.cli.evidence import verify_state
from irflow.models.ec2 import Ec2Target
from irflow.models.evidence import MemoryCaptureResult
from irflow.models.incident import IncidentState, Status
from tests.fake_agent import fake_ssm_agent
from tests.support import observed_instance, open_incident, quarantine_groups, read_evidence, running_worker, wait_for

NO_EGRESS = {"forensic_egress": [], "quarantine_instance_profile": ""}


def _egress_targets(group: dict) -> set[tuple]:
    return {
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), target)
        for p in group["IpPermissionsEgress"]
        for target in [g["GroupId"] for g in p.get("UserIdGroupPairs", [])]
        + [pl["PrefixListId"] for pl in p.get("PrefixListIds", [])]
        + [r["CidrIp"] for r in p.get("IpRanges", [])]
        + [r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])]
    }


def _manifest_entries(state) -> list[dict]:
    manifest = [e for e in state.evidence if e.kind == "manifest"][-1]
    return json.loads(read_evidence(manifest))["objects"]


async def test_with_forensic_egress_the_isolated_instance_is_imaged_through_the_endpoints(dev_env, workload):
    client = dev_env.client
    with fake_ssm_agent() as agent:
        async with running_worker(client) as settings:
            submission, handle = await open_incident(client, settings, workload)
            state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
            contained = observed_instance(workload)
            [quarantine] = quarantine_groups(workload)
            await handle.signal("approve", {"by": "alice", "comment": "confirmed C2", "eradication": "stop"})
            final = await handle.result()

    # Network: every ENI in the quarantine group, whose only egress is HTTPS to the endpoints.
    assert all(groups == [quarantine["GroupId"]] for groups in contained["enis"].values())
    assert quarantine["IpPermissions"] == []
    assert _egress_targets(quarantine) == {
        ("tcp", 443, 443, workload.endpoint_group_id),
        ("tcp", 443, 443, workload.s3_prefix_list_id),
    }
    # Credentials: the quarantine profile, whose role may do SSM core and write its own memory folder, nothing else.
    iam = boto3.client("iam")
    assert contained["profiles"] == [
        iam.get_instance_profile(InstanceProfileName=workload.quarantine_profile)["InstanceProfile"]["Arn"]
    ]
    statements = [
        statement
        for name in iam.list_role_policies(RoleName=workload.quarantine_profile)["PolicyNames"]
        for statement in iam.get_role_policy(RoleName=workload.quarantine_profile, PolicyName=name)["PolicyDocument"][
            "Statement"
        ]
    ]
    actions = {action for s in statements for action in s["Action"]}
    assert {a.split(":")[0] for a in actions} == {"ssm", "ssmmessages", "ec2messages", "s3", "kms"}
    assert [s["Resource"] for s in statements if "s3:PutObject" in s["Action"]] == [
        f"arn:aws:s3:::{workload.evidence_bucket}/incidents/*/memory/${{aws:userid}}/*"
    ]
    assert iam.list_attached_role_policies(RoleName=workload.quarantine_profile)["AttachedPolicies"] == []

    # The image: hashed by the worker, equal to what the instance hashed, in the signed manifest, verified.
    memory = state.memory_capture
    assert memory.mode == "through-endpoints" and memory.tool == "avml" and memory.captured
    assert memory.image.sha256 == agent.sha256 == memory.agent_sha256
    assert memory.image.key.startswith(f"incidents/{submission.incident_id}/memory/")
    [entry] = [e for e in _manifest_entries(final) if e["kind"] == "memory-image"]
    assert (entry["sha256"], entry["version_id"]) == (agent.sha256, memory.image.version_id)
    checks = verify_state(final, allow_unsigned=False, signing_key=None)
    assert [c for c in checks if c.status == "fail"] == []
    assert any(c.check == "content" and memory.image.key in c.subject and c.status == "pass" for c in checks)
    report = read_evidence(next(e for e in final.evidence if e.key.endswith("report.md"))).decode()
    assert agent.sha256 in report and "through the forensic egress" in report


async def test_without_forensic_egress_memory_is_skipped_and_the_report_says_why(dev_env, workload):
    client = dev_env.client
    with fake_ssm_agent() as agent:
        async with running_worker(client, **NO_EGRESS) as settings:
            _, handle = await open_incident(client, settings, workload)
            await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
            await handle.signal("reject", {"by": "bob", "reason": "test over"})
            final = await handle.result()
    assert agent.commands == [], "no command is sent to an instance that could not answer it"
    assert not final.memory_capture.captured and final.memory_capture.mode == "skip"
    assert "IRFLOW_FORENSIC_EGRESS" in final.memory_capture.reason
    report = read_evidence(next(e for e in final.evidence if e.key.endswith("report.md"))).decode()
    assert final.memory_capture.reason in report


async def test_memory_before_isolation_is_taken_while_the_instance_is_still_on_its_network(dev_env, workload):
    ec2 = boto3.client("ec2", region_name=workload.region)
    groups_seen: list[list[str]] = []
    with fake_ssm_agent() as agent:
        original = type(agent).run

        def run_and_look(self, command):  # what the instance's network was while it ran the capture
            groups_seen.extend(
                sorted(g["GroupId"] for g in eni["Groups"])
                for eni in ec2.describe_network_interfaces(
                    Filters=[{"Name": "attachment.instance-id", "Values": [workload.instance_id]}]
                )["NetworkInterfaces"]
            )
            original(self, command)

        agent.run = run_and_look.__get__(agent)
        async with running_worker(client := dev_env.client, memory_without_egress="before-isolation", **NO_EGRESS) as s:
            _, handle = await open_incident(client, s, workload)
            state = await wait_for(handle, lambda st: st.status == Status.AWAITING_DECISION)
            await handle.signal("reject", {"by": "bob", "reason": "test over"})
            await handle.result()
    quarantine = quarantine_groups(workload)[0]["GroupId"]
    assert groups_seen and all(quarantine not in groups for groups in groups_seen), "imaged before isolation"
    names = [a.name for a in state.actions]
    assert names.index("acquire_memory") < names.index("isolate_network")
    assert state.memory_capture.mode == "before-isolation" and state.memory_capture.image.sha256 == agent.sha256
    assert not state.memory_capture.isolated_at_deadline


async def test_isolation_happens_at_the_deadline_even_when_the_capture_hangs(skipping_env, workload):
    """The capture never finishes before its deadline: its first attempt ends with "not answered yet", the next is
    an hour away. (A stand-in that blocks inside an attempt cannot be used here: the time-skipping server holds its
    clock while an activity attempt runs.)"""
    attempted = threading.Event()

    @activity.defn(name="acquire_memory")
    async def unfinished_capture(target: Ec2Target) -> MemoryCaptureResult:
        if activity.info().attempt == 1:
            attempted.set()
            raise ApplicationError("the instance has not answered yet", next_retry_delay=timedelta(hours=1))
        return MemoryCaptureResult(status="TimedOut", reason="the capture did not finish in time")

    activities = [a for a in all_activities() if getattr(a, "__name__", "") != "acquire_memory"] + [unfinished_capture]
    client = skipping_env.client
    settings = {"memory_without_egress": "before-isolation", "memory_before_isolation_seconds": 600, **NO_EGRESS}
    async with running_worker(client, activities=activities, **settings) as configured:
        _, handle = await open_incident(client, configured, workload)
        await asyncio.get_running_loop().run_in_executor(None, attempted.wait, 60)
        state = await handle.query("current_state", result_type=IncidentState)
        assert "isolate_network" not in [a.name for a in state.actions], "the capture is given its time"
        started = time.monotonic()
        await skipping_env.sleep(timedelta(seconds=601))
        state = await wait_for(handle, lambda s: any(a.name == "isolate_network" for a in s.actions), timeout=60)
        assert time.monotonic() - started < 60, "the deadline passed on the server's clock, not the wall's"
        quarantine = quarantine_groups(workload)[0]["GroupId"]
        assert all(groups == [quarantine] for groups in observed_instance(workload)["enis"].values())
        assert any("passed its deadline" in entry.event for entry in state.timeline)
        assert state.memory_capture is None, "isolated while the capture was still unfinished"
        await skipping_env.sleep(timedelta(hours=1, minutes=1))
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION, timeout=60)
        assert state.memory_capture.isolated_at_deadline and "deadline" in state.memory_capture.reason
        await handle.signal("reject", {"by": "bob", "reason": "test over"})
        await handle.result()
