"""Sigma conditions: maps, lists, `not`, `1 of`/`all of` and precedence, and the index hints a condition yields
only when every way it can be true requires them."""

from __future__ import annotations

import pytest

from irflow.detection.sigma import SigmaDetectionRule
from tests.irflow.detection.sigma_support import EVENT, make_rule

ABC = "    a:\n        eventName: Nope\n    b:\n        userIdentity.type: IAMUser\n    c:\n"
ABC_TRUE = ABC + "        readOnly: true\n"
ABC_FALSE = ABC + "        readOnly: false\n"


@pytest.mark.parametrize(
    ("detection", "expected"),
    [
        # map: AND
        ("    sel:\n        eventName: CreateAccessKey\n        userIdentity.type: IAMUser\n    condition: sel", True),
        ("    sel:\n        eventName: CreateAccessKey\n        userIdentity.type: Root\n    condition: sel", False),
        # list of maps: OR
        ("    sel:\n        - eventName: Nope\n        - userIdentity.type: IAMUser\n    condition: sel", True),
        (
            "    sel:\n        eventName: CreateAccessKey\n    f:\n        userIdentity.type: IAMUser\n"
            "    condition: sel and not f",
            False,
        ),
        (
            "    sel:\n        eventName: CreateAccessKey\n    f:\n        userIdentity.type: Root\n"
            "    condition: sel and not f",
            True,
        ),
        (
            "    selection_a:\n        eventName: Nope\n    selection_b:\n        userIdentity.type: IAMUser\n"
            "    condition: 1 of selection_*",
            True,
        ),
        (
            "    selection_a:\n        eventName: Nope\n    selection_b:\n        userIdentity.type: IAMUser\n"
            "    condition: all of selection_*",
            False,
        ),
        (
            "    a:\n        eventName: CreateAccessKey\n    b:\n        userIdentity.type: IAMUser\n"
            "    condition: all of them",
            True,
        ),
        ("    a:\n        eventName: Nope\n    b:\n        userIdentity.type: IAMUser\n    condition: 1 of them", True),
        (
            ABC_TRUE + "    condition: (a or b) and not c",
            True,
        ),
        (
            ABC_FALSE + "    condition: (a or b) and not c",
            False,
        ),
        (
            ABC_FALSE + "    condition: a or (b and not c)",
            False,
        ),
        (
            ABC_FALSE + "    condition: a or b and not c",
            False,
        ),
        ("    a:\n        eventName: Nope\n    condition: 1 of nothing* or a", False),
    ],
)
def test_conditions(tmp_path, detection, expected):
    rule = make_rule(tmp_path, detection)
    assert isinstance(rule, SigmaDetectionRule), rule
    assert rule.matches(EVENT) is expected


@pytest.mark.parametrize(
    ("detection", "sources", "names"),
    [
        (
            "    s:\n        eventSource: iam.amazonaws.com\n        eventName: [A, B]\n    condition: s",
            {"iam.amazonaws.com"},
            {"A", "B"},
        ),
        ("    s:\n        eventName: A\n    t:\n        eventName: B\n    condition: s or t", set(), {"A", "B"}),
        ("    s:\n        eventName: A\n    t:\n        userAgent: B\n    condition: s or t", set(), set()),
        ("    s:\n        eventName: A\n    t:\n        eventName: B\n    condition: s and not t", set(), {"A"}),
        ("    s:\n        eventName: A*\n    condition: s", set(), set()),
        ("    s:\n        eventName|contains: A\n    condition: s", set(), set()),
        ("    s:\n        eventName: A\n    condition: not s", set(), set()),
        ("    s:\n        - eventName: A\n        - eventSource: x\n    condition: s", set(), set()),
    ],
)
def test_index_hints_only_when_every_path_requires_them(tmp_path, detection, sources, names):
    rule = make_rule(tmp_path, detection)
    assert isinstance(rule, SigmaDetectionRule), rule
    assert rule.event_sources == sources and rule.event_names == names
