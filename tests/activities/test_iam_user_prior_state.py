"""The user's prior state survives a replay: the first look records each key's status and irflow's two tags on the
user before anything changes, and a look taken again after containment (a worker died after deactivating the key,
before its workflow task completed: the look runs again) reads the record, not the contained user. The key's undo
removes the record. (The EC2 side, and with real processes: tests/e2e/test_worker_kill.py.)"""

from __future__ import annotations

import boto3

from activities import iam_user as steps
from activities.tagging import restore_resource_tags, tag_resource
from irflow.models.iam import IamUserStepInput
from irflow.models.tagging import tag_request_for
from tests.activities.test_iam_user import CUTOFF, INCIDENT_ID, _target


def _tags(workload) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in boto3.client("iam").list_user_tags(UserName=workload.iam_user)["Tags"]}


def test_a_look_again_after_containment_sees_the_user_as_before(workload):
    target = _target(workload)
    tags_before = _tags(workload)
    first = steps.describe_iam_user_context(target)
    step = IamUserStepInput(target=target, prior=first, issued_before=CUTOFF)
    steps.deactivate_access_key(step)
    tag_resource(tag_request_for(step))

    again = steps.describe_iam_user_context(target)
    assert again.key(workload.access_key_id).status == "Active"
    assert again.tags == first.tags == tags_before, "irflow's tags and the record are not the user's own"

    steps.restore_access_key_status(IamUserStepInput(target=target, prior=again))
    keys = boto3.client("iam").list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in keys}[workload.access_key_id] == "Active"
    assert not any(k.startswith(steps.PRIOR_TAG) for k in _tags(workload)), "the record goes with the undo"
    assert _tags(workload)["irflow:incident-id"] == INCIDENT_ID, "still marked until the tags' own undo"
    restore_resource_tags(tag_request_for(IamUserStepInput(target=target, prior=again)))
    assert _tags(workload) == tags_before, "the tags' undo, on the prior state read again, gives the user's tags back"
