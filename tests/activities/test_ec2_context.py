"""EC2 context: an instance that does not exist is a typed, non-retryable not-found (moto)."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.ec2_context import describe_instance_context
from tests.activities.ec2_support import ec2_target


def test_unknown_instance_is_a_non_retryable_not_found(workload):
    with pytest.raises(ApplicationError) as raised:
        describe_instance_context(ec2_target(workload, "i-0000000000000000a"))
    assert raised.value.type == "ResourceNotFound"
    assert raised.value.non_retryable is True
