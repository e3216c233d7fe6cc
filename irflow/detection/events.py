"""CloudTrail records out of whatever carries them: EventBridge "AWS API Call via CloudTrail" events,
CloudTrail log files ({"Records": [...]}, gzip or not), JSON lines, or bare records."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from typing import Any

# The EventBridge detail-types that carry one CloudTrail record (the intake template forwards both).
CLOUDTRAIL_DETAIL_TYPES = frozenset({"AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail"})


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
    elif document.get("detail-type") in CLOUDTRAIL_DETAIL_TYPES and isinstance(document.get("detail"), dict):
        yield document["detail"]
    elif "eventName" in document and "eventSource" in document:
        yield document
    elif isinstance(document.get("event"), dict):  # corpus lines: {"event": record, ...labels}
        yield from records(document["event"])


def read_bytes(data: bytes) -> Iterator[dict[str, Any]]:
    """A whole file: gzip or not, one JSON document or JSON lines."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    try:
        yield from records(json.loads(text))
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
            document = json.loads(line)
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
