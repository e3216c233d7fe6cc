"""`irflow codec-server`: Temporal's codec-server protocol over irflow's payload codec, so the Temporal UI and
`temporal workflow show --codec-endpoint` can show sealed payloads decoded to those allowed to see them.

`POST /encode` and `POST /decode` (also under `/{namespace}/...`, as the CLI's endpoint template makes them)
take and answer `{"payloads": [...]}` in proto3 JSON (bytes as base64). CORS answers only the configured
origins (the UI's); with a token configured, every request must carry `Authorization: Bearer <token>`.
Runs where the KMS key may be used; the UI never sees a key, only what this server decodes for it.
"""

from __future__ import annotations

import hmac
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payloads

from irflow.codec import KmsPayloadCodec, PayloadDecryptionError

log = logging.getLogger("irflow.codec_server")

MAX_BODY_BYTES = 8 * 1024 * 1024
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], codec: KmsPayloadCodec, origins: list[str], token: str = "") -> None:
        super().__init__(address, CodecRequest)
        self.codec = codec
        self.origins = set(origins)
        self.token = token

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class CodecRequest(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug(format, *args)  # payloads never reach a log; paths and codes only at debug

    def _operation(self) -> str | None:
        """'encode' or 'decode' for /encode, /decode, /<namespace>/encode, /<namespace>/decode; else None."""
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        if parts and parts[-1] in ("encode", "decode") and len(parts) <= 2:
            return parts[-1]
        return None

    def _cors(self) -> dict[str, str]:
        origin = self.headers.get("Origin", "")
        if origin not in self.server.origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Vary": "Origin",
        }

    def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in self._cors().items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self) -> None:  # noqa: N802 (the stdlib's naming)
        if self._operation() is None:
            self._answer(404, {"message": "no such endpoint"})
        else:
            self._answer(204 if self._cors() else 403)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(405 if self._operation() else 404, {"message": "POST /encode or /decode"})

    def do_POST(self) -> None:  # noqa: N802
        operation = self._operation()
        if operation is None:
            return self._answer(404, {"message": "no such endpoint"})
        token = self.server.token
        if token and not hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {token}"):
            return self._answer(401, {"message": "a bearer token is required"})
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY_BYTES:
            return self._answer(400 if length <= 0 else 413, {"message": "a JSON body of payloads is required"})
        try:
            payloads = ParseDict(json.loads(self.rfile.read(length)), Payloads())
        except (ValueError, ParseError) as error:
            return self._answer(400, {"message": f"not a payloads document: {error}"})
        codec = self.server.codec
        try:
            done = [codec.seal(p) if operation == "encode" else codec.open(p) for p in payloads.payloads]
        except PayloadDecryptionError as error:
            return self._answer(400, {"message": str(error)})
        self._answer(200, MessageToDict(Payloads(payloads=done)))
        return None


def make_server(
    key_id: str, host: str = "127.0.0.1", port: int = 0, origins: list[str] | None = None, token: str = ""
) -> CodecServer:
    return CodecServer((host, port), KmsPayloadCodec(key_id), origins or [], token)
