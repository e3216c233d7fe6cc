"""The worker's IAM policy, generated from what each activity declares (never guessed)."""

from __future__ import annotations

from typing import Any

import activities


def worker_policy() -> dict[str, Any]:
    by_service: dict[str, set[str]] = {}
    for actions in activities.required_iam_actions().values():
        for action in actions:
            by_service.setdefault(action.split(":", 1)[0], set()).add(action)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"Irflow{service.title().replace('-', '')}",
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": "*",
            }
            for service, actions in sorted(by_service.items())
        ],
    }
