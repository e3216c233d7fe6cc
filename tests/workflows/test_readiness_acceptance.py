"""The acceptance line of readiness, end to end: the ReadinessWorkflow on its schedule with the real checks (the
worker's own activities) over a ready account in moto is all green and says nothing; then one thing at a time is
broken, and exactly that check fails, with its fix, and exactly one notification goes out about it."""

from __future__ import annotations

import boto3

from irflow.models.readiness import CheckStatus, ReadinessReport
from tests.support import notifications, running_worker
from tests.workflows.test_readiness import scheduled


def _not_passing(report: ReadinessReport) -> list[str]:
    return [r.key for r in report.results if r.status != CheckStatus.PASS]


async def test_a_ready_account_is_all_green_and_each_thing_broken_is_told_once(dev_env, ready, workload):
    client = dev_env.client
    region = workload.region
    notifications(workload)  # nothing left over from seeding
    async with running_worker(client) as settings, scheduled(client, settings) as runs:
        _, green = await runs.next()
        assert _not_passing(green) == [], [(r.check, r.evidence) for r in green.results if r.status != "pass"]
        checks = {r.check for r in green.results}
        expected = {"guardduty.enabled", "intake.rules", "kms.keys", "worker.permissions", "temporal.search_attributes"}
        assert expected <= checks
        assert not {c for c in checks if c.endswith("_pollers")}, "the pollers are preflight's alone"
        assert notifications(workload) == [], "all green on the first run: nothing to tell"

        boto3.client("kms", region_name=region).disable_key(KeyId=workload.kms_key_id)
        _, keyless = await runs.next()
        assert _not_passing(keyless) == ["kms.keys@-/-"]
        (told,) = notifications(workload)
        assert (told["readiness"]["check"], told["status"], told["previous_status"]) == ("kms.keys", "fail", "pass")
        assert workload.kms_key_id in told["readiness"]["evidence"] and "enable-key" in told["readiness"]["fix"]

        events = boto3.client("events", region_name=region)
        rule = ready.intake.guardduty_rule_name
        events.remove_targets(Rule=rule, Ids=[t["Id"] for t in events.list_targets_by_rule(Rule=rule)["Targets"]])
        events.delete_rule(Name=rule)
        _, ruleless = await runs.next()
        assert _not_passing(ruleless) == [f"intake.rules@-/{region}", "kms.keys@-/-"]
        (told,) = notifications(workload)
        assert (told["readiness"]["check"], told["status"]) == ("intake.rules", "fail") and rule in told["message"]

        boto3.client("kms", region_name=region).enable_key(KeyId=workload.kms_key_id)
        _, mended = await runs.next()
        assert _not_passing(mended) == [f"intake.rules@-/{region}"]
        (told,) = notifications(workload)
        assert (told["readiness"]["check"], told["status"], told["previous_status"]) == ("kms.keys", "pass", "fail")
