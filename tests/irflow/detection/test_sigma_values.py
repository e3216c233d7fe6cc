"""Sigma values against CloudTrail values: every modifier, case, wildcard, regex (and its literal prefilter),
network, number, boolean and field reference, through a rule as it loads."""

from __future__ import annotations

import pytest

from irflow.detection.sigma import SigmaDetectionRule
from irflow.detection.sigma_values import required_literal
from tests.irflow.detection.sigma_support import EVENT, make_rule


@pytest.mark.parametrize(
    ("detection", "expected"),
    [
        ("eventName: CreateAccessKey", True),
        ("eventName: createaccesskey", True),  # case-insensitive
        ("eventName: CreateAccessKeys", False),
        ("eventName: Create*", True),
        ("eventName: '*access*'", True),
        ("eventName: Create?ccessKey", True),
        ("eventName: Create?Key", False),
        ("eventName|startswith: CREATE", True),
        ("eventName|endswith: key", True),
        ("eventName|endswith: Create", False),
        ("userAgent|contains: 's3 browser'", True),
        ("userAgent|contains: TruffleHog", False),
        ("userAgent|contains|all: ['S3', 'Browser']", True),
        ("userAgent|contains|all: ['S3', 'Cyberduck']", False),
        ("userAgent|contains: ['Cyberduck', 'Browser']", True),  # list: OR
        ("userAgent|re: '^S3 Browser [0-9.]+ '", True),
        ("userAgent|re: '^s3 browser'", False),  # |re is case-sensitive
        ("userAgent|re|i: '^s3 browser'", True),
        ("userAgent|re: '.+Browser 9.+'", True),  # literal prefilter, then the regex
        ("userAgent|re: '.+Browser 8.+'", False),
        ("userAgent|re: '.+Browser.+com$'", True),
        ("userAgent|re: 'S3 Browser$'", False),  # the literal is there, the anchor is not
        ("userAgent|re|i: '.+BROWSER 9.+'", True),
        ("userIdentity.arn|re: '.+:user/ali(ce|son)'", True),  # a group: no prefilter, plain search
        ("sourceIPAddress|cidr: 10.0.0.0/8", True),
        ("sourceIPAddress|cidr: 192.168.0.0/16", False),
        ("userIdentity.arn|endswith: user/alice", True),
        ("userIdentity.arn|fieldref|endswith: requestParameters.userName", True),
        ("userIdentity.arn|fieldref: requestParameters.userName", False),
        ("userIdentity.userName|fieldref: requestParameters.userName", True),
        ("errorCode: null", True),
        ("errorMessage: null", True),  # missing counts as null
        ("eventName: null", False),
        ("userIdentity.type: [Root, IAMUser]", True),
        ("requestParameters.enable: 'false'", True),  # JSON false compared as text
        ("requestParameters.enable: false", True),
        ("readOnly: true", False),
        ("requestParameters|contains: '\"enable\":false'", True),  # objects as compact JSON
        ("requestParameters.layers|contains: 'evil'", True),  # arrays: any element
        ("responseElements.items.tags: secret", True),  # path through arrays
        ("responseElements.items.id: c", False),
        ("requestParameters.layers|contains: '*'", True),
        ("requestParameters.missing|contains: '*'", False),
        ("eventName|cased: createaccesskey", False),
    ],
)
def test_field_modifiers(tmp_path, detection, expected):
    rule = make_rule(tmp_path, f"    selection:\n        {detection}\n    condition: selection")
    assert isinstance(rule, SigmaDetectionRule), rule
    assert rule.matches(EVENT) is expected


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (".+:assumed-role/aws:.+", ":assumed-role/aws:"),
        ("^foo\\.bar$", "foo.bar"),
        ("ab*cdef", "cdef"),  # b* may be absent: the run restarts after it
        ("ab+cd", "ab"),  # b+ keeps one b
        ("abc?de", "ab"),
        ("x(y)z", ""),  # groups, classes, alternation, counted repeats, \\d: no prefilter
        ("[a-z]+admin", ""),
        ("a|b", ""),
        ("\\d+abc", ""),
        ("ab{2}", ""),
    ],
)
def test_required_literal_of_a_regex(pattern, literal):
    assert required_literal(pattern) == literal
