"""Each built-in rule file, loaded on its own by the loader a team's files go through."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irflow.detection.catalogue import BUILTIN_RULES
from irflow.detection.rule_files import PythonRule, load_rule_files


@pytest.fixture
def builtin_rule_file() -> Callable[[str], list[PythonRule]]:
    """The rules of `irflow/detection/builtin/<stem>.py`, in file order, with their events attached."""

    def load(stem: str) -> list[PythonRule]:
        rules, rejected = load_rule_files([BUILTIN_RULES / f"{stem}.py"])
        assert rejected == []
        return rules

    return load
