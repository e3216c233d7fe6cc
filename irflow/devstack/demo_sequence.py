"""An attack sequence about the demo workload, for the tests and the embedded account (moto).

`examples/findings/attack-sequence.json` (written from GuardDuty's documented format, not captured) re-pointed at
real resources: the demo IAM user's leaked access key and the web instance it launched commands on, plus a network
interface no playbook answers. Re-timed to now, like `demo.sample_finding`.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from irflow.devstack.demo import REPO, DemoWorkload

SAMPLE_ATTACK_SEQUENCE = REPO / "examples" / "findings" / "attack-sequence.json"
# What the example names, replaced wherever it appears (uids, signals' resource uids, titles).
_EXAMPLE_INSTANCE = "i-0123456789abcdef0"
_EXAMPLE_KEY = "AKIAEXAMPLEDEPLOYBOT"
_EXAMPLE_USER = "deploy-bot"
_EXAMPLE_ACCOUNT = "123456789012"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_attack_sequence(
    instance_id: str,
    access_key_id: str,
    user_name: str,
    account_id: str = _EXAMPLE_ACCOUNT,
    region: str = "us-east-1",
    finding_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The example attack sequence (an EventBridge event), naming this instance and this user's access key."""
    text = SAMPLE_ATTACK_SEQUENCE.read_text()
    for example, real in (
        (_EXAMPLE_INSTANCE, instance_id),
        (_EXAMPLE_KEY, access_key_id),
        (_EXAMPLE_USER, user_name),
        (_EXAMPLE_ACCOUNT, account_id),
        ('"us-east-1', f'"{region}'),
        (":us-east-1:", f":{region}:"),
    ):
        text = text.replace(example, real)
    event = copy.deepcopy(json.loads(text))
    detail = event["detail"]
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    first_seen = now - timedelta(minutes=40)
    if finding_id:
        detail["arn"] = detail["arn"].replace(detail["id"], finding_id)
        detail["id"] = finding_id
    event["time"] = _stamp(now)
    detail.update(createdAt=_stamp(now - timedelta(minutes=1)), updatedAt=_stamp(now))
    detail["service"].update(eventFirstSeen=_stamp(first_seen), eventLastSeen=_stamp(now - timedelta(minutes=4)))
    return event


def workload_attack_sequence(workload: DemoWorkload, **kwargs: Any) -> dict[str, Any]:
    """The attack sequence about the demo workload: its web instance and its IAM user's leaked access key."""
    return sample_attack_sequence(
        workload.instance_id, workload.access_key_id, workload.iam_user, workload.account_id, workload.region, **kwargs
    )
