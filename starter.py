"""Start incidents from finding files: `python starter.py FILE [FILE ...]` (`-` reads standard input).

The queue listener arrives in a later version; this entry point and `irflow ingest` share one path.
"""

from __future__ import annotations

import asyncio
import sys

from irflow.ingest import ingest_main
from irflow.temporal_client import exit_now

if __name__ == "__main__":
    exit_now(asyncio.run(ingest_main(sys.argv[1:])))
