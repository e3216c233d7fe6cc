"""Notifications over SNS: the team's topic for phase changes, a second topic for escalations.

Each message is JSON (what scripts and queues read) and carries, when the workflow says what it is about, the
account's alias, console links to the resource and to the finding, and the incident's link in the Temporal UI, both
as fields (`account_alias`, `links`) and in `text`, the same in lines a person reads. Email subscribers get the
text; every other protocol gets the JSON (SNS's MessageStructure=json).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, client, typed_aws_errors
from irflow.models.identifiers import region_of_arn
from irflow.models.incident import StepResult
from irflow.models.settings import get_settings
from irflow.models.source_findings import (
    LinkedNotifyInput,
    NotificationSubject,
    finding_link,
    incident_link,
    resource_link,
)

# Account aliases, per account, for the worker process: an alias is found for an hour, a failed lookup is not
# tried again for five minutes (a notification never waits on a refusing IAM twice).
_ALIAS_SECONDS, _NO_ALIAS_SECONDS = 3600.0, 300.0
_aliases: dict[str, tuple[str | None, float]] = {}
_aliases_lock = threading.Lock()
_KINDS = {
    "instance": "EC2 instance",
    "user": "IAM user",
    "access-key": "access key",
    "role": "IAM role",
    "bucket": "S3 bucket",
    "function": "Lambda function",
    "db-instance": "RDS DB instance",
}


def account_alias(account_id: str) -> str | None:
    """The account's alias (iam:ListAccountAliases in that account), or None: none set, or IAM would not say."""
    now = time.monotonic()
    with _aliases_lock:
        found = _aliases.get(account_id)
        if found is not None and found[1] > now:
            return found[0]
    try:
        aliases = client("iam", None, account_id).list_account_aliases().get("AccountAliases", [])
        alias, keep = (aliases[0] if aliases else None), _ALIAS_SECONDS
    except (ClientError, BotoCoreError, ApplicationError):
        alias, keep = None, _NO_ALIAS_SECONDS
    with _aliases_lock:
        _aliases[account_id] = (alias, now + keep)
    return alias


def forget_aliases() -> None:
    """Forget the cached aliases (tests switch accounts' state between them)."""
    with _aliases_lock:
        _aliases.clear()


def _namespace(about: NotificationSubject) -> str:
    if about.namespace:
        return about.namespace
    if activity.in_activity():
        return activity.info().workflow_namespace
    return os.environ.get("TEMPORAL_NAMESPACE") or "default"


def _linked(about: NotificationSubject) -> dict[str, Any]:
    """The fields a notification about `about` carries: the account, its alias, and the links."""
    alias = account_alias(about.account_id)
    links = {
        "resource": resource_link(about.resource, about.region, about.partition) if about.resource else None,
        "finding": finding_link(about.finding) if about.finding else None,
        "incident": incident_link(get_settings().temporal_ui_url, _namespace(about), about.workflow_id)
        if about.workflow_id
        else None,
    }
    return {
        "account_id": about.account_id,
        "account_alias": alias or about.account_id,
        "region": about.region,
        "links": links,
    }


def _text(request: LinkedNotifyInput, body: dict[str, Any], about: NotificationSubject | None) -> str:
    """The message in lines a person reads."""
    lines = [request.subject, "", str(body.get("message", "")) or "(no message)", ""]
    lines.append(f"Incident: {request.incident_id}")
    if about is None:
        return "\n".join(lines)
    links = body["links"]
    alias = body["account_alias"]
    account = about.account_id if alias == about.account_id else f"{alias} ({about.account_id})"
    lines.append(f"Account: {account}, {about.region}")
    if about.resource:
        lines.append(f"Resource: {_KINDS[about.resource.kind]} {about.resource.name}: {links['resource']}")
    if about.finding and links["finding"]:
        finding_type = body.get("finding_type") or about.finding.id
        lines.append(f"Finding: {finding_type} ({about.finding.product or about.finding.source}): {links['finding']}")
    if links["incident"]:
        lines.append(f"Temporal UI: {links['incident']}")
    return "\n".join(lines)


@aws_activity("sns:Publish", "iam:ListAccountAliases")
def publish_notification(request: LinkedNotifyInput) -> StepResult:
    settings = get_settings()
    topic = settings.escalation_topic_arn if request.channel == "escalation" else settings.notify_topic_arn
    if request.channel == "escalation" and not topic:
        topic = settings.notify_topic_arn  # an escalation must reach someone
    if not topic:
        return StepResult(changed=False, detail={"reason": "no SNS topic configured", "subject": request.subject})
    about = request.about if isinstance(request, LinkedNotifyInput) else None  # a plain NotifyInput has no links
    body: dict[str, Any] = {"incident_id": request.incident_id, **request.body}
    if about is not None:
        body.update(_linked(about))
    body["text"] = _text(request, body, about)
    message = json.dumps(body, default=str, sort_keys=True)
    with typed_aws_errors(f"publish to {topic}"):
        published = client("sns", region_of_arn(topic)).publish(
            TopicArn=topic,
            Subject=request.subject[:100],
            Message=json.dumps({"default": message, "email": body["text"]}),
            MessageStructure="json",
            MessageAttributes={
                "incident_id": {"DataType": "String", "StringValue": request.incident_id},
                "channel": {"DataType": "String", "StringValue": request.channel},
            },
        )
    return StepResult(changed=True, detail={"topic": topic, "message_id": published["MessageId"]})
