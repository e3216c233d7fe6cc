"""Corrections to moto's Lambda where it behaves unlike AWS in ways irflow's evidence depends on.

In AWS, GetFunction's `Code.Location` is a pre-signed S3 URL (valid for ten minutes) from which the
deployment package can be downloaded. moto 5.2.5 returns a URL on amazonaws.com that nothing serves.
Here the URL points at a small HTTP server on 127.0.0.1 that serves the function's package bytes, so
irflow's download-and-verify path runs against moto as it would against AWS. Product code is unchanged.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_applied = False
_lock = threading.Lock()
_packages: dict[str, bytes] = {}
_state = {"status": 200}
_server: ThreadingHTTPServer | None = None


class _PackageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        token = self.path.lstrip("/").split("/", 1)[0]
        with _lock:
            body, status = _packages.get(token), _state["status"]
        if body is None or status != 200:
            status = status if status != 200 else 404
            payload = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        return


def _start_server() -> ThreadingHTTPServer:
    global _server
    if _server is None:
        _server = ThreadingHTTPServer(("127.0.0.1", 0), _PackageHandler)
        threading.Thread(target=_server.serve_forever, name="moto-lambda-code", daemon=True).start()
    return _server


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _code_location_serves_the_package()


def _code_location_serves_the_package() -> None:
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.get_code
    server = _start_server()

    def get_code(self) -> dict:
        response = original(self)
        code = response.get("Code") or {}
        package = getattr(self, "code_bytes", None)
        if code.get("RepositoryType") == "S3" and package:
            token = uuid.uuid4().hex
            with _lock:
                _packages[token] = bytes(package)
            host, port = server.server_address[:2]
            code["Location"] = (
                f"http://{host}:{port}/{token}/{self.function_name}.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=600"
            )
        return response

    LambdaFunction.get_code = get_code


@contextmanager
def code_location_answers(status: int) -> Iterator[None]:
    """Make every code location answer `status` (403: an expired or denied pre-signed URL)."""
    with _lock:
        before, _state["status"] = _state["status"], status
    try:
        yield
    finally:
        with _lock:
            _state["status"] = before
