"""What the router's tests share: findings as GuardDuty sends them, about one account's instance, user, role
and bucket, and the playbook a finding should reach in this version.

The helpers keep the leading underscore they had as private helpers of test_router_table.py, so the tests
that moved out of it read exactly as before.
"""

from __future__ import annotations

import json
import re
from typing import Any

import irflow.intake.router as router
from irflow.devstack.demo import sample_finding
from irflow.intake.router import TRIAGE_PLAYBOOK
from irflow.models.finding import Finding, parse_guardduty
from tests.support import CORPORA

ACCOUNT, REGION = "111122223333", "eu-west-1"
INSTANCE_ID = "i-0a1b2c3d4e5f60718"
USER_NAME = "alice.martin"
OTHER_USER_NAME = "bob.okafor"
ACCESS_KEY = "AKIAQWERTYUIOPASDF12"
SESSION_KEY = "ASIAZXCVBNMLKJHGFD34"
ROLE_NAME = "web-app-instance-role"
BUCKET = "acme-invoices-prod"
WORKFLOW_ID_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")

GUARDDUTY_CORPUS = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").open() if line.strip()]


# --- findings as GuardDuty sends them ---


def _access_key(
    user_type: str = "IAMUser",
    user_name: str = USER_NAME,
    access_key_id: str = ACCESS_KEY,
    principal_id: str = "AIDAQWERTYUIOPASDF1234",
) -> dict[str, Any]:
    return {"accessKeyId": access_key_id, "principalId": principal_id, "userName": user_name, "userType": user_type}


def _buckets(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}", "type": "Destination", **extra}]


def _event(finding_type: str, resource: dict[str, Any] | None = None, finding_id: str | None = None) -> dict[str, Any]:
    """The sample GuardDuty EventBridge event with another type and, unless None, another resource."""
    event = sample_finding(INSTANCE_ID, ACCOUNT, REGION, finding_type=finding_type, finding_id=finding_id)
    if resource is not None:
        event["detail"]["resource"] = resource
    return event


def _finding(finding_type: str, resource: dict[str, Any] | None = None, finding_id: str | None = None) -> Finding:
    return parse_guardduty(_event(finding_type, resource, finding_id)).finding


def _user_finding(
    finding_type: str = "UnauthorizedAccess:IAMUser/TorIPCaller", finding_id: str | None = None, **access_key: Any
) -> Finding:
    return _finding(
        finding_type, {"resourceType": "AccessKey", "accessKeyDetails": _access_key(**access_key)}, finding_id
    )


def _role_session_finding(access_key_id: str = SESSION_KEY, finding_id: str | None = None) -> Finding:
    return _user_finding(
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        finding_id,
        user_type="AssumedRole",
        user_name=ROLE_NAME,
        access_key_id=access_key_id,
        principal_id=f"AROAQWERTYUIOPASDF5678:{INSTANCE_ID}",
    )


def _expected_playbook(intended: str) -> str:
    return intended if intended in router.AVAILABLE_PLAYBOOKS else TRIAGE_PLAYBOOK
