"""A loopback HTTP proxy for reliability tests: it stands between a client and ``qrt serve`` and,
request by request, forwards, holds, fails or cuts what passes through.

Usage::

    from support.proxy import Verdict, running_proxy

    def rule(seen):                      # called once per request, on the proxy's thread for it
        if seen.method == "POST" and seen.path.endswith("/jobs"):
            return Verdict(answer="status", status=503)   # forwarded, then answered 503
        return Verdict()                                  # forwarded, upstream's answer passed on

    with running_proxy(server.url, rule) as proxy:
        proxy.url                         # http://127.0.0.1:PORT, the address to give the client
        proxy.seen                        # every request so far (number, method, path)

A :class:`Verdict` says whether the request reaches the upstream (``forward``), what the client gets
(``answer``: the upstream's answer, another ``status``, a connection ``reset``, or ``silence``: no
answer at all until the client gives up) and whether the proxy first waits for an event (``hold``;
``hold_after``: after forwarding, before answering). Every wait is bounded (``max_hold``), so a
test that forgets to release a hold still ends. The proxy speaks HTTP/1.1 with keep-alive to the
client and opens one upstream connection per request; it passes the client's ``Host`` header on,
so URLs the server builds from it (``/api/users/me``) point back at the proxy.
"""

from __future__ import annotations

import http.client
import select
import socket
import struct
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Proxy", "Seen", "Verdict", "running_proxy"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it; ``number`` counts from 1 in arrival order."""

    number: int
    method: str
    path: str  # without the query string
    query: str
    body: bytes


@dataclass(frozen=True)
class Verdict:
    forward: bool = True  # send the request to the upstream
    answer: str = "pass"  # "pass" | "status" | "reset" | "silence"
    status: int = 503  # for answer="status"
    retry_after: str | None = None  # Retry-After header of a "status" answer
    hold: threading.Event | None = None  # wait for it (bounded by the proxy's max_hold)
    hold_after: bool = False  # hold after forwarding instead of before


Rule = Callable[[Seen], Verdict]


@dataclass
class Proxy:
    upstream: str
    rule: Rule
    max_hold: float = 60.0
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def record(self, method: str, target: str, body: bytes) -> Seen:
        parts = urllib.parse.urlsplit(target)
        with self._lock:
            seen = Seen(len(self.seen) + 1, method, parts.path, parts.query, body)
            self.seen.append(seen)
        return seen

    def busy(self, delta: int) -> None:
        with self._idle:
            self._active += delta
            self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no request is under way (held ones included); False if ``timeout`` passed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def start(self) -> None:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed mid-request resets its connections: expected here, not worth a trace.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: Proxy

    def log_message(self, format: str, *args: object) -> None:
        return

    def _any(self) -> None:
        self.owner.busy(+1)
        try:
            self._handle()
        finally:
            self.owner.busy(-1)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = self.owner.record(self.command, self.path, body)
        verdict = self.owner.rule(seen)
        if verdict.hold is not None and not verdict.hold_after:
            verdict.hold.wait(self.owner.max_hold)
        answer: tuple[int, list[tuple[str, str]], bytes] | None = None
        if verdict.forward:
            try:
                answer = self._forward(body)
            except OSError:
                answer = (502, [("Content-Type", "text/plain")], b"upstream unreachable")
        if verdict.hold is not None and verdict.hold_after:
            verdict.hold.wait(self.owner.max_hold)
        if verdict.answer == "reset":
            self._reset()
        elif verdict.answer == "silence":
            self._silence()
        elif verdict.answer == "status" or answer is None:
            headers = [("Content-Type", "application/json")]
            if verdict.retry_after is not None:
                headers.append(("Retry-After", verdict.retry_after))
            text = b'{"error": {"message": "injected by the test proxy"}}'
            self._send(verdict.status, headers, text)
        else:
            self._send(*answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urllib.parse.urlsplit(self.owner.upstream)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, data
        finally:
            conn.close()

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        try:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees a broken connection, not an answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _silence(self) -> None:
        """Answer nothing until the client closes the connection (it timed out), or max_hold."""
        self.close_connection = True
        try:
            select.select([self.connection], [], [], self.owner.max_hold)
        except (OSError, ValueError):
            pass


@contextmanager
def running_proxy(
    upstream: str, rule: Rule | None = None, *, max_hold: float = 60.0
) -> Iterator[Proxy]:
    """A proxy to ``upstream`` (``http://127.0.0.1:PORT``) applying ``rule`` (default: forward
    everything); always stopped on leaving."""
    proxy = Proxy(upstream, rule or (lambda seen: Verdict()), max_hold=max_hold)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
