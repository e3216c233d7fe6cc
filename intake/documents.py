"""Reading finding documents: one JSON record, an array, GetFindings output, or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from models.finding import FindingRejected, ParsedFinding, parse_guardduty


def _records(document: Any) -> Iterator[Any]:
    if isinstance(document, list):
        yield from document
    elif isinstance(document, dict) and isinstance(document.get("Findings"), list) and "Type" not in document:
        yield from document["Findings"]  # boto3 GetFindings output
    else:
        yield document


def read_findings(text: str) -> list[ParsedFinding | FindingRejected]:
    """Parse every record in `text`; each entry is a finding or the reason it was rejected."""
    stripped = text.strip()
    if not stripped:
        return [FindingRejected("empty", "the input is empty")]
    try:
        documents = [json.loads(stripped)]
    except json.JSONDecodeError as whole_error:
        documents = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as error:
                if number == 1:
                    raise FindingRejected(
                        "not_json", f"not JSON: {whole_error.msg} at line {whole_error.lineno}"
                    ) from None
                documents.append(FindingRejected("not_json", f"line {number} is not JSON: {error.msg}"))
    results: list[ParsedFinding | FindingRejected] = []
    for document in documents:
        if isinstance(document, FindingRejected):
            results.append(document)
            continue
        for record in _records(document):
            try:
                results.append(parse_guardduty(record))
            except FindingRejected as rejected:
                results.append(rejected)
    return results
