"""CloudTrail log files in S3, announced to the listener by S3's notifications: each file is read (within
IRFLOW_LOG_FILE_MAX_BYTES, as stored and decompressed), its records go through the detection rules, and the
reference to it becomes the findings they raise, or the reason the file could not be read (which the listener
dead-letters).

EventBridge never delivers read-only calls; the log files hold them, so this is how detection sees them.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from irflow.intake.envelopes import LogFileReference, Unwrapped, detect_safely
from irflow.intake.listener_stats import ListenerStats
from irflow.models.finding import FindingRejected, ParsedFinding
from irflow.models.settings import IrflowSettings

if TYPE_CHECKING:  # detection is imported only when it is on
    from irflow.detection.detector import Detector

# The listener's logger: these lines are part of what an operator reads from the listener.
log = logging.getLogger("irflow.listener")

# S3 answers that waiting will not change: the message is dead-lettered with the reason.
_UNREADABLE = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "403", "404", "InvalidObjectState"})


class LogFileReader:
    """Reads the log files a message refers to, on the listener's executor, with the listener's detector."""

    def __init__(
        self,
        settings: IrflowSettings,
        executor: Executor,
        stats: ListenerStats,
        detector: Detector | None,
        s3: Any = None,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.detector = detector
        self._executor = executor
        self._s3 = s3  # created on the first log file: most deployments never read one

    async def expand(self, results: Unwrapped) -> list[ParsedFinding | FindingRejected]:
        """Replace each S3 log-file reference by the findings its records raise (or why it could not be read).
        A transient S3 error propagates: the message is not deleted and comes back."""
        expanded: list[ParsedFinding | FindingRejected] = []
        for result in results:
            if isinstance(result, LogFileReference):
                expanded += await self._read(result)
            else:
                expanded.append(result)
        return expanded

    async def _read(self, ref: LogFileReference) -> list[ParsedFinding | FindingRejected]:
        from irflow.detection.events import read_bytes

        where = f"s3://{ref.bucket}/{ref.key}"
        limit = self.settings.log_file_max_bytes
        if ref.size is not None and ref.size > limit:
            return [
                FindingRejected(
                    "log_file_too_large", f"{where} is {ref.size} bytes (IRFLOW_LOG_FILE_MAX_BYTES={limit})"
                )
            ]
        if self._s3 is None:
            self._s3 = boto3.session.Session().client(
                "s3", config=Config(retries={"mode": "standard", "max_attempts": 5})
            )

        def fetch() -> bytes | FindingRejected:
            response = self._s3.get_object(Bucket=ref.bucket, Key=ref.key)
            if response.get("ContentLength", 0) > limit:
                response["Body"].close()
                return FindingRejected(
                    "log_file_too_large",
                    f"{where} is {response['ContentLength']} bytes (IRFLOW_LOG_FILE_MAX_BYTES={limit})",
                )
            return response["Body"].read()

        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(self._executor, fetch)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _UNREADABLE:  # it will not get better by waiting: the reason goes to the dead-letter queue
                return [FindingRejected("log_file_unreadable", f"{where}: {code}: {error}")]
            raise
        if isinstance(data, FindingRejected):
            return [data]
        try:
            # on the executor: inflating and parsing a big file must not hold up the other messages
            records = await loop.run_in_executor(self._executor, lambda: list(read_bytes(data, limit)))
        except FindingRejected as refused:  # a gzip bomb, nesting no log file has, a lone surrogate
            if refused.code == "log_file_too_large":
                return [FindingRejected(refused.code, f"{where} {refused.reason} (IRFLOW_LOG_FILE_MAX_BYTES={limit})")]
            return [FindingRejected(refused.code, f"{where} is not a CloudTrail log file: {refused.reason}")]
        except (OSError, EOFError, ValueError) as error:  # bad gzip, not UTF-8, not JSON
            return [FindingRejected("log_file_invalid", f"{where} is not a CloudTrail log file: {error}")]
        found: list[ParsedFinding | FindingRejected] = []
        assert self.detector is not None  # references are only made with detection on
        for number, record in enumerate(records, 1):
            found += detect_safely(self.detector, record)
            if number % 500 == 0:
                await asyncio.sleep(0)  # a big file must not hold up the other messages' deliveries
        self.stats.log_files += 1
        self.stats.log_records += len(records)
        log.info("read %s: %d record(s), %d finding(s)", where, len(records), len(found))
        return found
