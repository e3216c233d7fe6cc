"""Notifications over SNS: the team's topic for phase changes, a second topic for escalations."""

from __future__ import annotations

import json

from activities.aws import aws_activity, client, typed_aws_errors
from irflow.models.identifiers import region_of_arn
from irflow.models.incident import NotifyInput, StepResult
from irflow.models.settings import get_settings


@aws_activity("sns:Publish")
def publish_notification(request: NotifyInput) -> StepResult:
    settings = get_settings()
    topic = settings.escalation_topic_arn if request.channel == "escalation" else settings.notify_topic_arn
    if request.channel == "escalation" and not topic:
        topic = settings.notify_topic_arn  # an escalation must reach someone
    if not topic:
        return StepResult(changed=False, detail={"reason": "no SNS topic configured", "subject": request.subject})
    message = json.dumps({"incident_id": request.incident_id, **request.body}, default=str, sort_keys=True)
    with typed_aws_errors(f"publish to {topic}"):
        published = client("sns", region_of_arn(topic)).publish(
            TopicArn=topic,
            Subject=request.subject[:100],
            Message=message,
            MessageAttributes={
                "incident_id": {"DataType": "String", "StringValue": request.incident_id},
                "channel": {"DataType": "String", "StringValue": request.channel},
            },
        )
    return StepResult(changed=True, detail={"topic": topic, "message_id": published["MessageId"]})
