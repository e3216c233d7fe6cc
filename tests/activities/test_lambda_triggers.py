"""Lambda eradication against in-process moto: the triggers are recorded first, then exactly those reaching
the function from outside its account are detached (mappings disabled, outside grants removed)."""

from __future__ import annotations

import hashlib
import json

import pytest

from activities import lambda_triggers as steps
from irflow.devstack.demo_lambda import observed_function
from tests.activities.lambda_support import (
    _evidence_body,
    _step,
    demo_fixture,  # noqa: F401  (a fixture: pytest finds it in the module)
)
from tests.support import act
from workflows.lambda_playbook import LAMBDA_CONTAINMENT_STEPS


@pytest.mark.parametrize(
    ("principal", "outside"),
    [
        ({"Service": "s3.amazonaws.com"}, ["Service:s3.amazonaws.com"]),
        ("*", ["*"]),
        ({"AWS": "*"}, ["*"]),
        ({"AWS": "arn:aws:iam::111122223333:root"}, ["arn:aws:iam::111122223333:root"]),
        ({"AWS": "111122223333"}, ["111122223333"]),
        ({"AWS": "arn:aws:iam::123456789012:role/ops"}, []),
        ({"AWS": "123456789012"}, []),
        (
            {"AWS": ["arn:aws:iam::123456789012:root", "arn:aws:iam::444455556666:user/x"]},
            ["arn:aws:iam::444455556666:user/x"],
        ),
    ],
)
def test_who_is_outside_the_account(principal, outside):
    statement = {"Sid": "s", "Effect": "Allow", "Principal": principal, "Action": "lambda:InvokeFunction"}
    assert steps._outside_principals(statement, "123456789012") == outside


def test_deny_statements_are_never_outside_grants():
    assert steps._outside_principals({"Effect": "Deny", "Principal": "*"}, "123456789012") == []
    assert steps._outside_principals({"Effect": "Allow", "NotPrincipal": {"AWS": "x"}}, "123456789012")


def test_eradication_records_the_triggers_then_detaches_exactly_the_outside_ones(demo):
    step = _step(demo)
    for containment in LAMBDA_CONTAINMENT_STEPS:
        act(containment, step)
    evidence = steps.record_lambda_triggers(step)
    raw = _evidence_body(evidence)
    assert hashlib.sha256(raw).hexdigest() == evidence.sha256
    document = json.loads(raw)
    assert document["mappings_to_disable"] == [demo.mapping_uuid]
    assert {s["sid"] for s in document["statements_to_remove"] if s["qualifier"] is None} == set(
        demo.outside_statement_ids
    )

    disabled = steps.disable_event_source_mappings(step)
    assert disabled.changed is True
    assert disabled.detail["disabled"] == [
        {"uuid": demo.mapping_uuid, "event_source_arn": demo.queue_arn, "prior_state": "Enabled"}
    ]
    assert steps.disable_event_source_mappings(step).changed is False

    removed = steps.remove_invoke_permissions(step)
    assert removed.changed is True
    assert {r["sid"] for r in removed.detail["removed"]} == set(demo.outside_statement_ids)
    assert steps.remove_invoke_permissions(step).changed is False

    seen = observed_function(demo)
    assert seen["mappings"] == {demo.mapping_uuid: "Disabled"}
    assert seen["policy_statements"] == sorted(demo.own_statement_ids)
    assert seen["reserved_concurrency"] == 0, "the function stays throttled"
    assert seen["code_sha256"] == demo.code_sha256, "the function and its code are kept"
    # First capture wins: recording again after the removal keeps what was there before it.
    again = steps.record_lambda_triggers(step)
    assert (again.key, again.version_id, again.sha256) == (evidence.key, evidence.version_id, evidence.sha256)
