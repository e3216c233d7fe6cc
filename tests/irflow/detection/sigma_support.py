"""What the Sigma tests share: a rule file around one detection, loaded as the catalogue loads Sigma files, and
the CloudTrail record those rules are matched against."""

from __future__ import annotations

from pathlib import Path

from irflow.detection.sigma import load_sigma_file


def make_rule(tmp_path: Path, detection: str, *, logsource: str = "product: aws\n    service: cloudtrail") -> object:
    text = f"""
title: Test rule
id: 11111111-2222-3333-4444-555555555555
status: test
author: Tester
description: A rule for tests.
tags:
    - attack.persistence
logsource:
    {logsource}
detection:
{detection}
level: high
"""
    path = tmp_path / "rule.yml"
    path.write_text(text)
    loaded, unsupported = load_sigma_file(path)
    assert len(loaded) + len(unsupported) == 1
    return loaded[0] if loaded else unsupported[0]


EVENT = {
    "eventSource": "iam.amazonaws.com",
    "eventName": "CreateAccessKey",
    "userAgent": "S3 Browser 9.5.5 https://s3browser.com",
    "sourceIPAddress": "10.1.2.3",
    "errorCode": None,
    "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice", "userName": "alice"},
    "requestParameters": {"userName": "alice", "enable": False, "layers": ["arn:aws:lambda:layer:evil:1"]},
    "responseElements": {"items": [{"id": "a", "tags": ["x", "Secret"]}, {"id": "b"}]},
    "readOnly": False,
}
