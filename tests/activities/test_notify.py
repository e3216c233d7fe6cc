"""Notifications: each channel's message is JSON, delivered to that channel's SNS topic (moto)."""

from __future__ import annotations

import pytest

from activities.notify import publish_notification
from irflow.models.incident import NotifyInput
from tests.activities.evidence_support import INCIDENT_ID
from tests.support import notifications


@pytest.mark.parametrize("channel, topic_attr", [("team", "notify_topic_arn"), ("escalation", "escalation_topic_arn")])
def test_publish_notification_delivers_json_to_the_channel_topic(workload, channel, topic_attr):
    request = NotifyInput(
        incident_id=INCIDENT_ID, channel=channel, subject="Instance contained", body={"phase": "containment"}
    )
    result = publish_notification(request)
    assert result.changed is True
    [message] = notifications(workload)
    assert message["topic"] == getattr(workload, topic_attr)
    assert message["subject"] == "Instance contained"
    assert message["incident_id"] == INCIDENT_ID and message["phase"] == "containment"
