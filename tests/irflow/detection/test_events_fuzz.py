"""Fuzzing the reading of CloudTrail log files (`read_bytes`): real records mutated, as a log file, JSON lines or
EventBridge events, gzip or not, cut short or corrupted; raw bytes; gzip bombs. Each file yields its records or
raises one of the errors `intake.log_files` and `irflow detect` turn into a reason (ValueError, with
FindingRejected among them; OSError; EOFError), never another exception, and never inflates past its cap."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irflow.detection.events import read_bytes
from irflow.models.finding import MAX_JSON_DEPTH, FindingRejected
from tests.fuzz_support import (
    assert_refusal,
    cloudtrail_event,
    cloudtrail_records,
    deep_text,
    fuzz,
    gzip_bomb,
    json_text,
    mutated,
)

CAP = 64 * 1024  # decompressed bytes: small, so fuzzed gzip reaches it


def _read_or_refused(data: bytes) -> None:
    try:
        found = list(read_bytes(data, CAP))
    except FindingRejected as refused:
        assert_refusal(refused)
        assert refused.code in ("too_deep", "not_text", "log_file_too_large")
        return
    except (ValueError, OSError, EOFError) as error:  # what log_files dead-letters as log_file_invalid
        assert str(error)
        return
    assert all(isinstance(record, dict) for record in found)


files = st.lists(mutated(cloudtrail_records()), min_size=1, max_size=4)
layouts = st.sampled_from(["log file", "json lines", "events", "bare"])


def _file(records: list, layout: str) -> bytes:
    if layout == "log file":
        return json_text({"Records": records}).encode()
    if layout == "json lines":
        return "\n".join(json_text(r) for r in records).encode()
    if layout == "events":
        return "\n".join(json_text(cloudtrail_event(r)) for r in records).encode()
    return json_text(records).encode()


@fuzz(max_examples=500)
@given(files, layouts, st.booleans(), st.integers(min_value=0, max_value=3), st.integers(min_value=0))
def test_mutated_log_files_yield_records_or_raise_what_the_listener_refuses(records, layout, gz, damage, where):
    data = _file(records, layout)
    if gz:
        data = gzip.compress(data, mtime=0)
    if damage == 1 and data:  # cut short
        data = data[: where % len(data)]
    elif damage == 2 and data:  # one byte flipped
        at = where % len(data)
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    _read_or_refused(data)


@fuzz(max_examples=400)
@given(st.one_of(st.binary(max_size=400), st.binary(max_size=400).map(lambda b: b"\x1f\x8b" + b)))
def test_any_bytes_yield_records_or_raise_what_the_listener_refuses(data) -> None:
    _read_or_refused(data)


def test_a_gzip_bomb_is_refused_with_the_reason_without_inflating_it_whole() -> None:
    bomb = gzip_bomb(10 * 1024 * 1024)  # 10 MB of zeros, about 10 KB on the wire
    assert len(bomb) < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(FindingRejected) as refused:
            list(read_bytes(bomb, 1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (refused.value.code, refused.value.reason) == (
        "log_file_too_large",
        f"decompresses to more than {1024 * 1024} bytes",
    )
    assert peak < 4 * 1024 * 1024, f"{peak} bytes held to refuse it"


def test_a_file_that_inflates_to_exactly_the_cap_is_read() -> None:
    log = json_text({"Records": list(cloudtrail_records()[:3])}).encode()
    assert len(list(read_bytes(gzip.compress(log), len(log)))) == 3
    with pytest.raises(FindingRejected):
        list(read_bytes(gzip.compress(log), len(log) - 1))


def test_several_gzip_members_are_read_as_one_file() -> None:
    """`gzip.decompress` read concatenated members; reading a chunk at a time still does."""
    first, second = (json_text(cloudtrail_event(r)) + "\n" for r in cloudtrail_records()[:2])
    data = gzip.compress(first.encode()) + gzip.compress(second.encode())
    assert len(list(read_bytes(data))) == 2


@pytest.mark.parametrize("layout", ["one document", "json lines"])
def test_a_file_nested_100_000_deep_is_refused_with_the_reason(layout) -> None:
    if layout == "one document":
        data, where = deep_text(100_000).encode(), "the file"
    else:
        data, where = (json.dumps(cloudtrail_records()[0]) + "\n" + deep_text(100_000)).encode(), "line 2"
    with pytest.raises(FindingRejected) as refused:
        list(read_bytes(gzip.compress(data)))
    assert (refused.value.code, refused.value.reason) == (
        "too_deep",
        f"{where} is nested deeper than {MAX_JSON_DEPTH} levels",
    )
