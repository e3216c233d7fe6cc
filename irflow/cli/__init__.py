"""The `irflow` command line for analysts and scripts (`irflow --help`).

Exit codes: 0 done; 1 bad input or the incident refused the request; 2 Temporal unreachable;
3 no such incident; 4 timed out.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

from pydantic import ValidationError

from irflow.cli.common import app
from irflow.temporal_client import exit_now

# Importing a module registers its commands, and `irflow --help` lists them in that order: an analyst's first.
for _commands in ("incidents", "evidence", "stats", "detection", "readiness", "operations"):
    importlib.import_module(f"irflow.cli.{_commands}")

__all__ = ["app", "main"]


def main() -> NoReturn:
    """Console entry point: run the command, then leave without interpreter teardown (see exit_now)."""
    from irflow.models.settings import SettingsFileError, settings_error_line

    try:
        app()  # typer reports usage errors itself and always ends with SystemExit
        code = 0
    except SystemExit as finished:
        code = finished.code if isinstance(finished.code, int) else (0 if finished.code is None else 1)
    except (SettingsFileError, ValidationError) as error:  # read lazily, by the commands that need settings
        sys.stderr.write(f"error: {settings_error_line(error)}\n")
        code = 2
    exit_now(code)
