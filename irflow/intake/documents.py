"""Reading finding documents (files, standard input): one JSON document, JSON lines, or a stream of
pretty-printed documents, each unwrapped by `intake.envelopes` exactly as a queue message would be, and each
result with how it arrived (the EventBridge event and SNS topics around it), which `intake.trust` judges."""

from __future__ import annotations

import json
from typing import Any

from irflow.intake.envelopes import Arrival, Arrived, unwrap_arrivals
from irflow.models.finding import FindingRejected, json_problem, loads_json, nested_too_deeply


def _json_lines(text: str) -> list[Any]:
    documents: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                documents.append(loads_json(line, f"line {number}"))
            except json.JSONDecodeError as error:
                documents.append(FindingRejected("not_json", f"line {number} is not JSON: {error.msg}"))
            except FindingRejected as rejected:
                documents.append(rejected)
    return documents


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _documents(text: str) -> list[Any]:
    """Decode one document, JSON lines, or pretty-printed values one after another (what `jq` prints).
    A value that does not decode, nests too deeply or is not text becomes a rejection naming its line."""
    try:
        return [loads_json(text, "the input")]
    except (json.JSONDecodeError, FindingRejected):
        pass  # several documents, or one refused: which line is told below
    first_line = next(line for line in text.splitlines() if line.strip())
    try:
        loads_json(first_line, "line 1")
    except json.JSONDecodeError:
        pass  # not a document of its own: pretty-printed documents
    except FindingRejected:
        return _json_lines(text)  # a whole document, refused: the other lines may be good
    else:
        return _json_lines(text)  # each line stands alone: one bad line spoils only itself
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position, length = 0, len(text)
    while True:
        while position < length and text[position].isspace():
            position += 1
        if position >= length:
            return documents
        try:
            value, end = decoder.raw_decode(text, position)
        except RecursionError:  # where this value ends is unknown: nothing after it can be read
            return [*documents, nested_too_deeply(f"line {_line_at(text, position)}")]
        except json.JSONDecodeError as error:
            line = _line_at(text, error.pos)
            if not documents:
                raise FindingRejected("not_json", f"not JSON: {error.msg} at line {line}") from None
            documents.append(FindingRejected("not_json", f"line {line} is not JSON: {error.msg}"))
            next_line = text.find("\n", position)
            position = length if next_line < 0 else next_line + 1
            continue
        problem = json_problem(value, text, position, end)
        documents.append(
            FindingRejected(problem[0], f"line {_line_at(text, position)} {problem[1]}") if problem else value
        )
        position = end


def read_findings(text: str) -> Arrived:
    """Parse every record in `text`; each entry is a finding or the reason it was rejected, with its arrival."""
    if not text.strip():
        return [(FindingRejected("empty", "the input is empty"), Arrival())]
    results: Arrived = []
    for document in _documents(text):
        results.extend([(document, Arrival())] if isinstance(document, FindingRejected) else unwrap_arrivals(document))
    return results
