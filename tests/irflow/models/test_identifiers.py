"""The identifier checks: every id the router makes is accepted, and values carrying shell syntax, path steps or
quotes are refused with a sentence saying why."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from irflow.devstack.demo import sample_bucket_finding, sample_finding
from irflow.intake.router import incident_id, route
from irflow.models import identifiers as ids
from irflow.models.finding import parse_guardduty

HOSTILE = [
    "inc-1; rm -rf /",
    "inc-$(id)",
    "inc-`id`",
    "inc-1 && curl x",
    "inc'1",
    'inc"1',
    "inc-1|sh",
    "inc/../../etc",
    "inc\n1",
    "inc-1>x",
    "",
]


def _router_id(event: dict) -> str:
    return incident_id(route(parse_guardduty(event).finding).incident_key, datetime(2026, 3, 1, 9, 0, 30, tzinfo=UTC))


def test_incident_ids_the_router_makes_are_accepted():
    made = [
        _router_id(sample_finding("i-0123456789abcdef0", "123456789012", "us-east-1")),
        _router_id(sample_bucket_finding("Legacy_Bucket.name", "123456789012", "eu-west-1")),
        "ec2-111122223333-us-east-1-i-0a1b2c3d4e5f60718-20260301T090030Z",
        "iam-user-123456789012-us-east-1-h0123456789abcdef0123-20260301T090030Z",
        "inc-evidence-0001",
    ]
    for made_id in made:
        assert ids.incident_id_refusal(made_id) is None, made_id
    assert made[0].endswith("-20260301T090030Z")


@pytest.mark.parametrize("value", HOSTILE)
def test_incident_ids_with_shell_syntax_or_path_steps_are_refused_with_a_reason(value):
    reason = ids.incident_id_refusal(value)
    assert reason and "not a valid incident id" in reason


def test_incident_ids_are_bounded_and_never_start_like_an_option_or_a_path():
    longest = "a" * ids.INCIDENT_ID_MAX_LENGTH
    assert ids.incident_id_refusal(longest) is None
    assert ids.incident_id_refusal(longest + "a")
    assert ids.incident_id_refusal("-rf") and ids.incident_id_refusal(".hidden") and ids.incident_id_refusal("..")
    assert "must be text" in ids.incident_id_refusal(None)  # type: ignore[arg-type]
    assert len(ids.refusal(ids.INCIDENT_ID, "x;" * 200) or "") < 200, "the sentence shows a bounded excerpt"


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (ids.INSTANCE_ID, ["i-0123abcd", "i-0123456789abcdef0"], ["i-0123", "i-0123456789ABCDEF0", "i-0123abcd;x"]),
        (ids.IAM_USER_NAME, ["alice", "svc+ci=prod,eu.x@corp-1_a"], ["a b", "a/b", "a;b", "é", "a" * 65]),
        (ids.IAM_ROLE_NAME, ["irflow-responder", "A" * 64], ["", "role$(id)", "a" * 65]),
        (ids.ACCESS_KEY_ID, ["AKIAIOSFODNN7EXAMPLE", "ASIA" + "A" * 16], ["AKIA", "akiaiosfodnn7example", "AKIA 1"]),
        (ids.BUCKET_NAME, ["my-bucket", "Legacy_Bucket.Name", "abc"], ["ab", "-bucket", "bucket-", "b;c", "a b c"]),
        (ids.LAMBDA_FUNCTION_NAME, ["fn", "my_fn-1"], ["fn:1", "fn;x", "a" * 65]),
        (ids.DB_IDENTIFIER, ["orders-db", "a"], ["1db", "db--x", "db-", "db_x", "a" * 64]),
        (ids.ACCOUNT_ID, ["123456789012"], ["12345678901", "1234567890123", "12345678901a"]),
        (ids.REGION, ["us-east-1", "us-gov-west-1", "ap-southeast-3", "eu-isoe-west-1"], ["us-east", "US-EAST-1"]),
        (ids.KEY_SEGMENT, ["report.json", "code-0a1b.zip", "svc+ci=x@y"], [".", "..", "", "a b", "a;b", "a/b"]),
    ],
)
def test_each_kind_accepts_what_aws_accepts_and_refuses_the_rest(kind, good, bad):
    for value in good:
        assert ids.refusal(kind, value) is None, (kind, value)
        assert ids.check(kind, value) == value
    for value in bad:
        assert ids.refusal(kind, value), (kind, value)
        with pytest.raises(ids.InvalidIdentifier):
            ids.check(kind, value)


def test_evidence_keys_are_made_of_valid_steps():
    assert ids.key_refusal("iam/users/svc+ci@corp.json") is None
    assert ids.key_refusal("instance/i-0123456789abcdef0/memory-acquisition.json") is None
    for bad in ["", "a//b", "../x", "a/../../b", "s3/b;c/configuration.json", "/abs", "a/"]:
        assert ids.key_refusal(bad), bad


def test_the_ssm_patterns_judge_as_the_checks_do():
    folder = "incidents/inc-evidence-0001/memory/AROAEXAMPLEROLEID0001:i-0123456789abcdef0/"
    cases = [
        (ids.SSM_BUCKET_PATTERN, ids.BUCKET_NAME, ["irflow-evidence", "Legacy_Bucket.Name", "b;c", "-bucket", "ab"]),
        (
            ids.SSM_PREFIX_PATTERN,
            ids.MEMORY_PREFIX,
            [folder, folder.replace("inc-evidence-0001", "-rf"), folder + "x", "incidents/inc-1/", folder[:-2] + "/"],
        ),
    ]
    for ssm_pattern, kind, values in cases:
        for value in values:
            assert (re.match(ssm_pattern, value) is not None) == (ids.refusal(kind, value) is None), value
    assert ids.refusal(ids.MEMORY_PREFIX, folder) is None


def test_the_region_of_an_arn_and_none_for_anything_else():
    assert ids.region_of_arn("arn:aws:kms:eu-west-1:123456789012:key/1234abcd") == "eu-west-1"
    assert ids.region_of_arn("arn:aws-us-gov:sns:us-gov-west-1:123456789012:irflow") == "us-gov-west-1"
    for other in ["alias/irflow-manifest", "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:iam::123456789012:role/x"]:
        assert ids.region_of_arn(other) is None, other
