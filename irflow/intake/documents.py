"""Reading finding documents (files, standard input): one JSON document, JSON lines, or a stream of
pretty-printed documents, each unwrapped by `intake.envelopes` exactly as a queue message would be, and each
result with how it arrived (the EventBridge event and SNS topics around it), which `intake.trust` judges."""

from __future__ import annotations

import json
from typing import Any

from irflow.intake.envelopes import Arrival, Arrived, unwrap_arrivals
from irflow.models.finding import FindingRejected


def _json_lines(text: str) -> list[Any]:
    documents: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as error:
                documents.append(FindingRejected("not_json", f"line {number} is not JSON: {error.msg}"))
    return documents


def _documents(text: str) -> list[Any]:
    """Decode one document, JSON lines, or pretty-printed values one after another (what `jq` prints).
    A value that does not decode becomes a rejection naming its line."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    first_line = next(line for line in text.splitlines() if line.strip())
    try:
        json.loads(first_line)
        return _json_lines(text)  # each line stands alone: one bad line spoils only itself
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position, length = 0, len(text)
    while True:
        while position < length and text[position].isspace():
            position += 1
        if position >= length:
            return documents
        try:
            value, position = decoder.raw_decode(text, position)
            documents.append(value)
        except json.JSONDecodeError as error:
            line = text.count("\n", 0, error.pos) + 1
            if not documents:
                raise FindingRejected("not_json", f"not JSON: {error.msg} at line {line}") from None
            documents.append(FindingRejected("not_json", f"line {line} is not JSON: {error.msg}"))
            next_line = text.find("\n", position)
            position = length if next_line < 0 else next_line + 1


def read_findings(text: str) -> Arrived:
    """Parse every record in `text`; each entry is a finding or the reason it was rejected, with its arrival."""
    if not text.strip():
        return [(FindingRejected("empty", "the input is empty"), Arrival())]
    results: Arrived = []
    for document in _documents(text):
        results.extend([(document, Arrival())] if isinstance(document, FindingRejected) else unwrap_arrivals(document))
    return results
