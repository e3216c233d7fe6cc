"""CloudTrail records out of whatever carries them: EventBridge "AWS API Call via CloudTrail" events,
CloudTrail log files ({"Records": [...]}, gzip or not), JSON lines, or bare records."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from irflow.models.finding import FindingRejected, loads_json
from irflow.models.settings import IrflowSettings

# The EventBridge detail-types that carry one CloudTrail record (the intake template forwards both).
CLOUDTRAIL_DETAIL_TYPES = frozenset({"AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail"})


def _is_cloudtrail_event(document: dict[str, Any]) -> bool:
    detail_type = document.get("detail-type")  # anything: a list in a frozenset raises TypeError
    return (
        isinstance(detail_type, str)
        and detail_type in CLOUDTRAIL_DETAIL_TYPES
        and isinstance(document.get("detail"), dict)
    )


def records(document: Any) -> Iterator[dict[str, Any]]:
    """Every CloudTrail record in one parsed JSON document."""
    if isinstance(document, list):
        for item in document:
            yield from records(item)
        return
    if not isinstance(document, dict):
        return
    if isinstance(document.get("Records"), list):
        yield from (r for r in document["Records"] if isinstance(r, dict))
    elif _is_cloudtrail_event(document):
        yield document["detail"]
    elif "eventName" in document and "eventSource" in document:
        yield document
    elif isinstance(document.get("event"), dict):  # corpus lines: {"event": record, ...labels}
        yield from records(document["event"])


# The listener passes IRFLOW_LOG_FILE_MAX_BYTES; other readers (`irflow detect --replay`) get its default.
DEFAULT_MAX_BYTES: int = IrflowSettings.model_fields["log_file_max_bytes"].default
_GUNZIP_CHUNK = 256 * 1024


def gunzip(data: bytes, max_bytes: int) -> bytearray:
    """`data` decompressed, a chunk at a time: a gzip bomb (megabytes that inflate to gigabytes) is refused
    (FindingRejected 'log_file_too_large') once past `max_bytes`, having held no more than that."""
    inflated = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as file:
        while True:
            try:
                chunk = file.read(_GUNZIP_CHUNK)
            except zlib.error as error:  # a valid header over corrupt deflate data: as bad as a bad header
                raise gzip.BadGzipFile(f"corrupt gzip data: {error}") from None
            if not chunk:
                return inflated
            inflated += chunk
            if len(inflated) > max_bytes:
                raise FindingRejected("log_file_too_large", f"decompresses to more than {max_bytes} bytes")


def read_bytes(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[dict[str, Any]]:
    """A whole file: gzip (decompressed to at most `max_bytes`) or not, one JSON document or JSON lines.
    Raises ValueError (JSONDecodeError, UnicodeDecodeError; FindingRejected for a gzip bomb, JSON nested deeper
    than any log file or a lone surrogate), OSError (gzip.BadGzipFile) or EOFError (truncated gzip)."""
    if data[:2] == b"\x1f\x8b":
        data = gunzip(data, max_bytes)
    text = data.decode("utf-8")
    try:
        yield from records(loads_json(text, "the file"))
        return
    except json.JSONDecodeError:
        pass
    yield from read_lines(text.splitlines())


def read_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            document = loads_json(line, f"line {number}")
        except json.JSONDecodeError as error:  # say which line of the file, not "line 1" of the line
            raise json.JSONDecodeError(f"line {number}: {error.msg}", error.doc, error.pos) from None
        yield from records(document)


def get_path(event: Any, dotted: str) -> Any:
    """`userIdentity.sessionContext.sessionIssuer.userName` → the value, or None."""
    value = event
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value
