"""A small threaded HTTP server on 127.0.0.1 that look-alike APIs build on.

Subclasses implement :meth:`FakeApi.handle`. The base class records every request and can inject
faults (any status, body, headers, or a dropped connection) ahead of the real handler, so tests can
script outages, rate limits and malformed bodies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    received_at: float = field(default_factory=time.monotonic)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """What the fake answers: a status, headers and a body (bytes, or an iterator of chunks)."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
        )


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests whose path starts with ``path``."""

    path: str
    times: int
    response: Response | None  # None drops the connection without answering
    after: int = 0
    """Matching requests to let through (answered normally) before the fault starts."""


class FakeApi:
    """Base look-alike server. ``base_url`` is ready after :meth:`start`."""

    prefix = ""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.latency = 0.0
        """Seconds each answer waits, like a real API's round trip (for parallelism and single flight)."""
        self.in_flight = 0
        self.max_in_flight = 0
        """The most requests the fake was serving at once since the last reset."""
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, port: int = 0) -> Self:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api._dispatch(self)

            def do_POST(self) -> None:
                api._dispatch(self)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def root_url(self) -> str:
        assert self._server, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.prefix

    # scripting -----------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_in_flight = 0
            self.latency = 0.0

    def fail(
        self,
        status: int = 503,
        *,
        times: int = 1,
        path: str = "",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``body``/``headers``),
        once ``after`` matching requests have been answered normally (a failure on page 2, say)."""
        raw = body.encode() if isinstance(body, str) else body
        if raw is None:
            raw = json.dumps({"message": f"injected HTTP {status}"}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        with self._lock:
            self._faults.append(
                Fault(self.prefix + path, times, Response(status, raw, dict(headers or {})), after)
            )

    def drop(self, *, times: int = 1, path: str = "", after: int = 0) -> None:
        """Close the connection without answering the next ``times`` matching requests (after ``after``)."""
        with self._lock:
            self._faults.append(Fault(self.prefix + path, times, None, after))

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == self.prefix + path]

    # to implement ----------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    # internals -------------------------------------------------------------------------------------
    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and path.startswith(fault.path):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            self._answer(handler, request, parts.path)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, handler: BaseHTTPRequestHandler, request: Request, path: str) -> None:
        fault = self._next_fault(path)
        if fault is not None and fault.response is None:
            handler.close_connection = True
            handler.connection.close()
            return
        try:
            response = fault.response if fault else self.handle(request)
        except Exception as exc:  # a bug in the fake must be visible, not a hang
            response = Response.json({"message": f"fake server error: {exc!r}"}, 500)
        assert response is not None
        self._write(handler, response)

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, response: Response) -> None:
        handler.send_response(response.status)
        for key, value in response.headers.items():
            handler.send_header(key, value)
        if isinstance(response.body, bytes):
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            handler.wfile.write(response.body)
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for chunk in _chunks(response.body):
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")


def _chunks(body: Iterable[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Group small pieces into chunks of about ``size`` bytes."""
    buffer = bytearray()
    for piece in body:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)
