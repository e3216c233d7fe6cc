"""Readiness on the AWS side: is every account and region irflow answers for prepared, so that a response does
not fail on the night of the incident? `irflow preflight` and the scheduled ReadinessWorkflow run these checks;
docs/readiness.md says what each looks at and how to fix it.

Every check is an activity (activities/readiness_*.py): `check(scope: ReadinessScope) -> CheckResult`, pass,
fail (with the fix in words) or unknown (it could not look: AccessDenied, a member role not assumable). It never
raises for what it finds, and declares the read-only IAM actions it uses. What may pass on its own (throttling, a
5xx, a timeout) it raises, for Temporal to retry; `run_aws_checks` (no Temporal) makes that unknown at once.

How a round runs:

    scopes = readiness_scopes(settings)            # pure: the security account's regions first, then members'
    for scope, checks in readiness_plan(scopes):   # pure too: which checks each scope runs
        for check in checks:
            result = check(scope)                  # or workflow.execute_activity(check, scope, ...)

or `run_all_aws_checks()` for the whole round at once (`irflow preflight`). Which checks a scope runs follows each
check's `reach` (also `global_check`, true for reach "global"):
- "global" (evidence bucket, KMS keys, SNS topics, the worker's permissions): once per round, in the first scope,
  which is the security account's first region; its results name the security account and no region;
- "security" (the intake stack and its rules, queues and policy): in every region of the security account;
- "member" (the member role): in every region of each member account;
- "scope" (GuardDuty, the trail, forensic egress): everywhere.
`checks_for(scope, first)` gives one scope's checks, `first` being true for the first scope of the list only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from activities.aws import side_by_side
from activities.readiness_account import (
    cloudtrail_trail,
    forensic_egress_vpcs,
    guardduty_enabled,
    guardduty_publishing_frequency,
)
from activities.readiness_common import Check, checked
from activities.readiness_evidence import (
    evidence_bucket_encryption,
    evidence_bucket_object_lock,
    evidence_bucket_public_access,
    evidence_bucket_versioning,
    kms_keys,
    sns_topics,
)
from activities.readiness_intake import (
    cloudtrail_eventbridge,
    intake_queue_policy,
    intake_redrive,
    intake_rules,
    intake_stack,
)
from activities.readiness_permissions import member_role_assumable, member_role_permissions, worker_permissions
from irflow.models.readiness import CheckResult, ReadinessScope
from irflow.models.settings import IrflowSettings, get_settings

# Every AWS check, in the order a report shows them.
AWS_CHECKS: tuple[Check, ...] = (
    guardduty_enabled,
    guardduty_publishing_frequency,
    cloudtrail_trail,
    cloudtrail_eventbridge,
    intake_stack,
    intake_rules,
    intake_redrive,
    intake_queue_policy,
    evidence_bucket_versioning,
    evidence_bucket_object_lock,
    evidence_bucket_encryption,
    evidence_bucket_public_access,
    kms_keys,
    sns_topics,
    worker_permissions,
    member_role_assumable,
    member_role_permissions,
    forensic_egress_vpcs,
)
GLOBAL_CHECKS = tuple(c for c in AWS_CHECKS if c.global_check)


def readiness_scopes(settings: IrflowSettings) -> list[ReadinessScope]:
    """Where a round looks, without asking AWS: each account × each region.

    Regions: IRFLOW_READINESS_REGIONS; empty: the evidence region, else AWS_DEFAULT_REGION (AWS_REGION).
    Accounts: the security account first, as "" (the worker's own credentials; IRFLOW_SECURITY_ACCOUNT_ID in
    IRFLOW_ACCOUNTS is the same account), then every other account of IRFLOW_ACCOUNTS, reached through the member
    role. The security account is always checked: the intake, the evidence and the worker live there.
    (IRFLOW_ACCOUNTS_FROM_ORGANIZATION is not listed here: name the accounts in IRFLOW_ACCOUNTS to check them.)"""
    regions = list(dict.fromkeys(settings.readiness_regions)) or [
        settings.evidence_region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION", "")
    ]
    members = [a for a in dict.fromkeys(settings.accounts) if a and a != settings.security_account_id]
    return [ReadinessScope(account_id=account, region=region) for account in ["", *members] for region in regions]


def checks_for(scope: ReadinessScope, first: bool) -> tuple[Check, ...]:
    """The checks `scope` runs, in display order. `first`: the scope is the first `readiness_scopes` returned
    (the global checks run there, once per round). Pure: a workflow may call it."""

    def runs(check: Check) -> bool:
        if check.reach == "global":
            return first
        if check.reach == "security":
            return not scope.account_id
        if check.reach == "member":
            return bool(scope.account_id)
        return True

    return tuple(check for check in AWS_CHECKS if runs(check))


def readiness_plan(scopes: Sequence[ReadinessScope]) -> list[tuple[ReadinessScope, tuple[Check, ...]]]:
    """Each scope with the checks it runs: the global checks in the first scope only."""
    return [(scope, checks_for(scope, first=index == 0)) for index, scope in enumerate(scopes)]


def run_aws_checks(
    scope: ReadinessScope, first: bool = True, checks: Sequence[Check] | None = None
) -> list[CheckResult]:
    """Run one scope's checks (`checks_for(scope, first)` unless given) side by side, as plain functions; results
    in the order of the checks. Nothing retries them here: a transient error is `unknown` at once."""
    chosen = checks_for(scope, first) if checks is None else tuple(checks)
    return side_by_side(*(lambda check=check: checked(check, scope) for check in chosen))


def run_all_aws_checks(settings: IrflowSettings | None = None) -> list[CheckResult]:
    """A whole round: every scope of `readiness_scopes`, each with its checks (`irflow preflight`)."""
    plan = readiness_plan(readiness_scopes(settings or get_settings()))
    return [result for scope, checks in plan for result in run_aws_checks(scope, checks=checks)]
