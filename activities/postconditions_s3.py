"""Postcondition checks of the S3 bucket playbook's steps, each taking the step's own argument
(BucketStepInput). A bucket deleted since containment is gone, not drift: it serves nothing."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity
from activities.postconditions_common import Verdict, check_read_only, is_gone
from activities.s3_bucket import _ALL_BLOCKED, _current, public_statements
from irflow.models.postconditions import Postcondition
from irflow.models.s3 import BucketStepInput

# What reading a bucket's configuration takes (s3_bucket._current: head, policy, public-access block, tags).
_READS = ("s3:ListBucket", "s3:GetBucketPolicy", "s3:GetBucketPublicAccessBlock", "s3:GetBucketTagging")


def _configuration(verdict: Verdict, step: BucketStepInput) -> dict[str, Any] | None:
    try:
        return _current(step.target)
    except ApplicationError as error:
        if not is_gone(error):
            raise
        verdict.vanished(f"bucket {step.target.bucket} no longer exists", step.target.bucket)
        return None


@aws_activity(*check_read_only(_READS))
def check_remove_public_policy_statements(step: BucketStepInput) -> Postcondition:
    """No statement of the bucket policy allows everyone."""
    verdict = Verdict("remove_public_policy_statements")
    current = _configuration(verdict, step)
    if current is None or not current["policy"]:
        return verdict.result()
    _, _, public = public_statements(current["policy"])
    if public:
        verdict.drifted(
            f"bucket {step.target.bucket}'s policy grants access to everyone: statement(s) {', '.join(public)}",
            step.target.bucket,
        )
    return verdict.result()


@aws_activity(*check_read_only(_READS))
def check_block_bucket_public_access(step: BucketStepInput) -> Postcondition:
    """All four settings of the bucket's public-access block are on."""
    verdict = Verdict("block_bucket_public_access")
    current = _configuration(verdict, step)
    if current is None:
        return verdict.result()
    block = current["public_access_block"]
    if block is None:
        verdict.drifted(f"bucket {step.target.bucket} has no public-access block", step.target.bucket)
        return verdict.result()
    off = [setting for setting in _ALL_BLOCKED if not block.get(setting)]
    if off:
        verdict.drifted(
            f"bucket {step.target.bucket}'s public-access block has {', '.join(off)} off", step.target.bucket
        )
    return verdict.result()
