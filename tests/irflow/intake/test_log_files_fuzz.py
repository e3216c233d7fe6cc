"""Fuzzing the listener's reading of CloudTrail log files (`LogFileReader.expand`) with what S3 could hand it:
real log files mutated, gzip or not, cut short, raw bytes, bombs. Every file ends in the findings its records
raise or in typed refusals (log_file_invalid, log_file_too_large, too_deep, not_text, detection_failed) naming the file,
which the listener dead-letters, never in another exception."""

from __future__ import annotations

import asyncio
import gzip
import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irflow.detection.detector import Detector
from irflow.intake.envelopes import LogFileReference
from irflow.intake.listener_stats import ListenerStats
from irflow.intake.log_files import LogFileReader
from irflow.models.finding import MAX_JSON_DEPTH, FindingRejected, ParsedFinding
from irflow.models.settings import IrflowSettings
from tests.fuzz_support import assert_refusal, cloudtrail_records, deep_text, fuzz, gzip_bomb, json_text, mutated
from tests.support import CORPORA

LIMIT = 256 * 1024
WHERE = "s3://trail/AWSLogs/f.json.gz"


class _OneObjectS3:
    """An S3 client holding one object: what get_object answers (the reader asks nothing else)."""

    def __init__(self) -> None:
        self.body = b""

    def get_object(self, Bucket: str, Key: str) -> dict:
        return {"ContentLength": len(self.body), "Body": io.BytesIO(self.body)}


@pytest.fixture(scope="module")
def reader():
    with ThreadPoolExecutor(max_workers=2) as executor:
        settings = IrflowSettings(task_queue="unused", log_file_max_bytes=LIMIT)
        detector = Detector([CORPORA / "sigma" / "rules"])
        yield LogFileReader(settings, executor, ListenerStats(), detector, s3=_OneObjectS3())


def _expanded(reader: LogFileReader, body: bytes) -> list[ParsedFinding | FindingRejected]:
    reader._s3.body = body
    results = asyncio.run(reader.expand([LogFileReference("trail", "AWSLogs/f.json.gz")]))
    for result in results:
        if isinstance(result, FindingRejected):
            assert_refusal(result)
            assert WHERE in result.reason or result.code == "detection_failed", result.reason
        else:
            assert isinstance(result, ParsedFinding)
    return results


bodies = st.one_of(
    st.lists(mutated(cloudtrail_records()), max_size=4).map(lambda records: json_text({"Records": records}).encode()),
    st.binary(max_size=300),
)


@fuzz(max_examples=300)
@given(bodies, st.booleans(), st.integers(min_value=0, max_value=10_000))
def test_mutated_log_files_end_in_findings_or_refusals_naming_the_file(reader, body, gz, cut) -> None:
    data = gzip.compress(body, mtime=0) if gz else body
    _expanded(reader, data[:cut] if cut % 3 == 0 else data)


def test_a_gzip_bomb_is_refused_with_the_setting_to_raise(reader) -> None:
    [refused] = _expanded(reader, gzip_bomb(10 * 1024 * 1024))
    assert refused.code == "log_file_too_large"
    assert refused.reason == f"{WHERE} decompresses to more than {LIMIT} bytes (IRFLOW_LOG_FILE_MAX_BYTES={LIMIT})"


def test_a_log_file_nested_100_000_deep_is_refused_with_the_reason(reader) -> None:
    [refused] = _expanded(reader, gzip.compress(deep_text(100_000).encode()))
    assert refused.code == "too_deep"
    assert (
        refused.reason
        == f"{WHERE} is not a CloudTrail log file: the file is nested deeper than {MAX_JSON_DEPTH} levels"
    )
