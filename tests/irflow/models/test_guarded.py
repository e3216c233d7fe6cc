"""What a contained incident guards: the same handle from the incident's side and from a CloudTrail record's,
identities only hashed."""

from __future__ import annotations

import pytest

from irflow.models.guarded import ACCESS_KEY, INSTANCE, KINDS, PERSONAL_KINDS, guard_handle, guard_handles
from irflow.visibility import identity_hash


def test_a_resource_is_named_in_clear_and_an_identity_only_hashed():
    assert guard_handle("111122223333", INSTANCE, "i-0123456789abcdef0") == "111122223333:instance:i-0123456789abcdef0"
    key = guard_handle("111122223333", ACCESS_KEY, "AKIAEXAMPLEKEY000001")
    assert key == f"111122223333:access-key:{identity_hash('AKIAEXAMPLEKEY000001')}"
    assert "AKIAEXAMPLEKEY000001" not in key
    for kind in PERSONAL_KINDS:
        assert "alice" not in guard_handle("1", kind, "alice")


def test_handles_keep_order_and_drop_repeats_and_blanks():
    assert guard_handles("1", "eni", ["eni-b", "", "eni-a", "eni-b"]) == ["1:eni:eni-b", "1:eni:eni-a"]


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown guarded kind"):
        guard_handle("1", "volume", "vol-1")
    assert len(set(KINDS)) == len(KINDS)
