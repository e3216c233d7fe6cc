"""Which findings irflow believes: from a source it trusts, about an account it answers for.

A finding is refused `untrusted_source` when
* its EventBridge event claims a finding's `detail-type` but not the service that publishes it
  (`GuardDuty Finding` from `aws.guardduty`, Security Hub's from `aws.securityhub`);
* it is a Security Hub (ASFF) finding whose `ProductArn` matches no trusted product: the built-in AWS
  products below, and the globs of IRFLOW_TRUSTED_PRODUCTS. An account's own `product/<account>/default`
  is not trusted: anyone allowed securityhub:BatchImportFindings writes there;
* on a queue, it came through an SNS topic not in IRFLOW_TRUSTED_TOPIC_ARNS, or came bare (neither an
  EventBridge event nor an SNS envelope) from an SQS sender not in IRFLOW_TRUSTED_SENDERS.
A finding is refused `untrusted_account` when it is about an account irflow does not answer for.

irflow's own detection findings are raised in the listener from CloudTrail, so their source is trusted by
construction (an SNS topic they came through must still be trusted); their account is checked like any.
A file handed to `irflow ingest` has no queue: the sender and topic checks do not apply there (`Channel.queue`);
an EventBridge event in it must still come from the service that publishes its `detail-type`.

Everything here is pure but `answered_accounts`, which asks AWS once, at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from irflow.intake.envelopes import SECURITY_HUB_DETAIL_TYPES, Arrival, Arrived, LogFileReference, Result, Unwrapped
from irflow.models.finding import GUARDDUTY_DETAIL_TYPE, FindingRejected, FindingSource, ParsedFinding
from irflow.models.settings import IrflowSettings

UNTRUSTED_SOURCE = "untrusted_source"
UNTRUSTED_ACCOUNT = "untrusted_account"

# Security Hub products irflow believes out of the box, in every partition and region. Security Hub's own
# controls are posture findings, which IRFLOW_RESPOND_TO_POSTURE_FINDINGS keeps off unless asked.
BUILT_IN_PRODUCTS = tuple(
    f"arn:*:securityhub:*::product/aws/{name}"
    for name in ("guardduty", "inspector", "macie", "access-analyzer", "securityhub")
)

# The service that publishes each finding event; EventBridge keeps `aws.*` sources for AWS.
EVENT_SOURCES = {GUARDDUTY_DETAIL_TYPE: "aws.guardduty", **dict.fromkeys(SECURITY_HUB_DETAIL_TYPES, "aws.securityhub")}


class AccountsUnknown(RuntimeError):
    """irflow cannot tell which accounts it answers for: it must not start guessing."""


@dataclass(frozen=True)
class Channel:
    """How a message reached irflow: from a queue (with its SQS `SenderId`), or from an operator's file."""

    queue: bool = True
    sender_id: str | None = None


FILE = Channel(queue=False)


@dataclass(frozen=True)
class TrustPolicy:
    accounts: frozenset[str]
    accounts_from: str = "IRFLOW_ACCOUNTS"  # says, in a refusal, where the accounts came from
    products: tuple[str, ...] = BUILT_IN_PRODUCTS
    topics: frozenset[str] = frozenset()
    senders: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: IrflowSettings, accounts: Iterable[str], accounts_from: str) -> TrustPolicy:
        return cls(
            accounts=frozenset(accounts),
            accounts_from=accounts_from,
            products=(*BUILT_IN_PRODUCTS, *settings.trusted_products),
            topics=frozenset(settings.trusted_topic_arns),
            senders=frozenset(settings.trusted_senders),
        )


def product_trusted(product_arn: str, globs: Iterable[str]) -> bool:
    """Does `product_arn` match one of `globs`? ARN globs match field by field, so `*` never crosses a `:`
    (`arn:*:securityhub:*::product/aws/macie` is every partition and region, and nothing else)."""
    fields = product_arn.split(":", 5)
    for glob in globs:
        parts = glob.split(":", 5)
        if len(parts) == 6 == len(fields):
            if all(fnmatchcase(field, part) for field, part in zip(fields, parts, strict=True)):
                return True
        elif fnmatchcase(product_arn, glob):
            return True
    return False


def _refused(reason: str) -> FindingRejected:
    return FindingRejected(UNTRUSTED_SOURCE, reason)


def _topic_refusal(arrival: Arrival, policy: TrustPolicy) -> FindingRejected | None:
    for topic in arrival.topics:
        if topic not in policy.topics:
            return _refused(f"SNS notification from topic {topic}, which is not in IRFLOW_TRUSTED_TOPIC_ARNS")
    return None


def source_refusal(result: Result, arrival: Arrival, channel: Channel, policy: TrustPolicy) -> FindingRejected | None:
    """Why `result` does not come from a source irflow trusts, or None."""
    if isinstance(result, FindingRejected):
        return None  # refused already, for its own reason
    if channel.queue and (refusal := _topic_refusal(arrival, policy)):
        return refusal
    if isinstance(result, LogFileReference):
        return None
    finding = result.finding
    if finding.source == FindingSource.IRFLOW_DETECTION:
        return None  # raised here, from CloudTrail: trusted by construction
    if arrival.detail_type in EVENT_SOURCES:
        expected = EVENT_SOURCES[arrival.detail_type]
        if arrival.event_source != expected:
            return _refused(
                f"finding {finding.id}: a {arrival.detail_type!r} event from source {arrival.event_source!r}; "
                f"only {expected!r} publishes these"
            )
    if finding.source == FindingSource.SECURITY_HUB:
        product = str(result.raw.get("ProductArn", ""))
        if not product_trusted(product, policy.products):
            return _refused(
                f"Security Hub finding {finding.id} comes from product {product}, which irflow does not trust "
                "(the built-in AWS products and IRFLOW_TRUSTED_PRODUCTS)"
            )
    if channel.queue and arrival.bare and channel.sender_id not in policy.senders:
        return _refused(
            f"finding {finding.id} came bare (no EventBridge event, no SNS envelope) from SQS sender "
            f"{channel.sender_id or '(none)'}, which is not in IRFLOW_TRUSTED_SENDERS"
        )
    return None


def account_refusal(parsed: ParsedFinding, policy: TrustPolicy) -> FindingRejected | None:
    """Why irflow does not answer for the account `parsed` is about, or None."""
    account = parsed.finding.account_id
    if account in policy.accounts:
        return None
    return FindingRejected(
        UNTRUSTED_ACCOUNT,
        f"finding {parsed.finding.id} is about account {account or '(none)'}, which irflow does not answer for "
        f"({policy.accounts_from})",
    )


def refusal(result: ParsedFinding, arrival: Arrival, channel: Channel, policy: TrustPolicy) -> FindingRejected | None:
    """Both checks, the source first."""
    return source_refusal(result, arrival, channel, policy) or account_refusal(result, policy)


def screen_sources(arrived: Arrived, channel: Channel, policy: TrustPolicy) -> Unwrapped:
    """Each result, or why its source is not trusted in its place. Log-file references are judged too (by the
    topic they came through), before anything reads the file."""
    return [source_refusal(result, arrival, channel, policy) or result for result, arrival in arrived]


def screen_accounts(
    results: Iterable[ParsedFinding | FindingRejected], policy: TrustPolicy
) -> list[ParsedFinding | FindingRejected]:
    """Each finding, or why irflow does not answer for its account in its place."""
    return [
        (account_refusal(result, policy) or result) if isinstance(result, ParsedFinding) else result
        for result in results
    ]


def own_identity(session: Any = None) -> dict[str, str] | None:
    """Who the listener's credentials are (sts:GetCallerIdentity, which needs no permission), asked once at
    start for both the accounts it answers for and its own principal (`irflow.own_principals`); None when STS
    does not answer."""
    import boto3

    try:
        return (session or boto3.session.Session()).client("sts").get_caller_identity()
    except (BotoCoreError, ClientError):
        return None


def answered_accounts(
    settings: IrflowSettings, session: Any = None, identity: dict[str, str] | None = None
) -> tuple[frozenset[str], str]:
    """The accounts irflow answers for, and where they came from: IRFLOW_ACCOUNTS; else, with
    IRFLOW_ACCOUNTS_FROM_ORGANIZATION, the organization's (organizations:ListAccounts); else the account of
    its own credentials (`identity`, or sts:GetCallerIdentity). Raises `AccountsUnknown` when AWS does not say."""
    if settings.accounts:
        return frozenset(settings.accounts), "IRFLOW_ACCOUNTS"
    import boto3

    session = session or boto3.session.Session()
    try:
        if settings.accounts_from_organization:
            pages = session.client("organizations").get_paginator("list_accounts").paginate()
            accounts = frozenset(account["Id"] for page in pages for account in page.get("Accounts", []))
            if not accounts:
                raise AccountsUnknown(
                    "cannot tell which accounts irflow answers for (organizations:ListAccounts listed none); "
                    "set IRFLOW_ACCOUNTS"
                )
            return accounts, "the organization's accounts, IRFLOW_ACCOUNTS_FROM_ORGANIZATION"
        account = (identity or session.client("sts").get_caller_identity())["Account"]
        return frozenset({account}), "the account of irflow's credentials; set IRFLOW_ACCOUNTS to answer for others"
    except (BotoCoreError, ClientError) as error:
        how = "organizations:ListAccounts" if settings.accounts_from_organization else "sts:GetCallerIdentity"
        raise AccountsUnknown(
            f"cannot tell which accounts irflow answers for ({how}: {error}); set IRFLOW_ACCOUNTS"
        ) from None
