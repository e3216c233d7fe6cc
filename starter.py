"""The finding listener, and one-off ingestion of finding files.

python starter.py                      listen to IRFLOW_QUEUE_URLS (or --queue URL ...) until SIGTERM
python starter.py FILE [FILE ...]      start or join incidents from files (- reads standard input)
"""

from __future__ import annotations

import argparse
import asyncio

from irflow.ingest import ingest_main
from irflow.listen import listen_main
from irflow.temporal_client import exit_now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="finding files to ingest instead of listening")
    parser.add_argument("--queue", action="append", default=None, help="SQS queue URL (repeatable)")
    parser.add_argument("--wait-seconds", type=int, default=20, help="SQS long-poll wait (default 20)")
    args = parser.parse_args()
    if args.files:
        return asyncio.run(ingest_main(args.files))
    return asyncio.run(listen_main(args.queue, args.wait_seconds))


if __name__ == "__main__":
    exit_now(main())
