"""An AWS endpoint for fault injection: a proxy in front of the moto server that forwards every request (query,
JSON and REST protocols alike) and can be told to call a hook when the Nth request of a given action arrives,
before or after forwarding it (e.g. SIGKILL the worker that sent it). It records every action it saw, in order.

A worker whose AWS_ENDPOINT_URL is `AwsProxy.url` is then killed at an exact point of its work: after the AWS
call took effect and before the worker could record it, or before the call reached AWS at all."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


def action_of(method: str, path: str, headers, body: bytes) -> str:
    """The AWS action a request asks for: `Action=` (EC2, IAM, STS: the query protocol), `X-Amz-Target` (KMS and
    other JSON services), else the REST call as `METHOD /path` (S3)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if body and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    query = parse_qs(urlsplit(path).query).get("Action")
    return query[0] if query else f"{method} {urlsplit(path).path}"


@dataclass
class Trap:
    """Call `hook` when the `nth` request whose action `matches` arrives: `before` forwarding it (it never
    reaches AWS) or after (it took effect; its answer is dropped)."""

    matches: Callable[[str], bool]
    hook: Callable[[], None]
    nth: int = 1
    before: bool = False
    seen: int = 0
    fired: threading.Event = field(default_factory=threading.Event)


class AwsProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self.upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.actions: list[str] = []
        self.traps: list[Trap] = []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def trap(self, matches: str | Callable[[str], bool], hook: Callable[[], None], nth: int = 1, before=False) -> Trap:
        """Arm a trap; `matches` is an action's exact name, or a predicate on it."""
        predicate = (lambda action: action == matches) if isinstance(matches, str) else matches
        trap = Trap(predicate, hook, nth, before)
        with self._lock:
            self.traps.append(trap)
        return trap

    def count(self, action: str) -> int:
        with self._lock:
            return self.actions.count(action)

    def _arrived(self, action: str) -> list[Trap]:
        """Record the action; the traps it springs (each once)."""
        with self._lock:
            self.actions.append(action)
            sprung = []
            for trap in self.traps:
                if trap.fired.is_set() or not trap.matches(action):
                    continue
                trap.seen += 1
                if trap.seen == trap.nth:
                    trap.fired.set()
                    sprung.append(trap)
            return sprung

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _handler(proxy: AwsProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects of AWS

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # the trailer
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self) -> None:
            body = self._body()
            sprung = proxy._arrived(action_of(self.command, self.path, self.headers, body))
            for trap in (t for t in sprung if t.before):
                trap.hook()
            if any(t.before for t in sprung):
                self.close_connection = True  # it never reached AWS: the sender is gone anyway
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                answer = response.read()
                status, reply_headers = response.status, response.getheaders()
            finally:
                upstream.close()
            for trap in sprung:
                trap.hook()
            try:
                self.send_response(status)
                # A HEAD answer has no body but says the object's length: passed on as it is.
                length = "content-length" if self.command != "HEAD" else ""
                for name, value in reply_headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != length:
                        self.send_header(name, value)
                if length:
                    self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)
            except OSError:
                self.close_connection = True  # the sender died (a hook killed it)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server's names)

        def log_message(self, *args) -> None:
            """Quiet: `AwsProxy.actions` is the log."""

    return Handler
