"""The acceptance line of readiness, end to end: the ReadinessWorkflow on its schedule with the real checks (the
worker's own activities) over a ready account in moto is all green and says nothing; then one thing at a time is
broken, and exactly that check fails, with its fix, and exactly one notification goes out about it."""

from __future__ import annotations

import boto3

from irflow.models.readiness import CheckStatus, ReadinessReport
from tests.activities.test_readiness import (
    _default_retention_suspended,
    _guardduty_disabled,
    _key_disabled,
    _rule_deleted,
    _trail_stopped,
    _without_one_permission,
)
from tests.support import notifications, running_worker
from tests.workflows.test_readiness import scheduled

# The six, in its order: what breaks, the check that must fail, what its fix names.
BREAKS = [
    (_default_retention_suspended, "evidence_bucket.object_lock", "put-object-lock-configuration"),
    (_rule_deleted(lambda r: r.intake.guardduty_rule_name), "intake.rules", "aws events put-rule"),
    (_key_disabled, "kms.keys", "aws kms enable-key"),
    (_without_one_permission, "worker.permissions", "irflow policy > worker-policy.json"),
    (_trail_stopped, "cloudtrail.trail", "aws cloudtrail start-logging"),
    (_guardduty_disabled, "guardduty.enabled", "--enable"),
]


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
        broken: list[str] = []

        # One thing at a time, each left broken: every run fails exactly one more check, and tells exactly that.
        for breaking, check, fix_names in BREAKS:
            found, _ = breaking(workload, ready)
            _, report = await runs.next()
            failing = [r for r in report.results if r.status != CheckStatus.PASS]
            assert [r.check for r in failing if r.check not in broken] == [check], _not_passing(report)
            assert all(r.status == CheckStatus.FAIL for r in failing)
            (told,) = notifications(workload)
            assert (told["readiness"]["check"], told["status"], told["previous_status"]) == (check, "fail", "pass")
            assert found in told["readiness"]["evidence"] and fix_names in told["readiness"]["fix"]
            broken.append(check)

        # Mended: the one change is told again, as passing.
        boto3.client("kms", region_name=region).enable_key(KeyId=workload.kms_key_id)
        _, mended = await runs.next()
        assert "kms.keys" not in {r.check for r in mended.results if r.status != CheckStatus.PASS}
        assert len(_not_passing(mended)) == len(broken) - 1
        (told,) = notifications(workload)
        assert (told["readiness"]["check"], told["status"], told["previous_status"]) == ("kms.keys", "pass", "fail")
