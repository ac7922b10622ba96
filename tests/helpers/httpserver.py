"""A real threaded HTTP server on 127.0.0.1 with per-URL fault injection, for download tests.

Serve bytes at paths, queue faults per path (each request takes the next queued fault, then
the path behaves normally), and inspect what clients asked: every request is recorded with
its Range / If-Range headers, the status sent and how many body bytes went out.

    with FaultyServer() as srv:
        srv.add("/a.tar.gz", data, etag='"v1"')
        srv.fault("/a.tar.gz", Fault.http_error(500), Fault.drop_after(1000))
        url = srv.url("/a.tar.gz")
        ...
        assert srv.requests_for("/a.tar.gz")[-1].range == "bytes=1000-"

``max_inflight`` tells how many requests were ever answered at the same time (bounded
parallelism). Ranges: ``Range: bytes=N-`` is answered 206 (honouring ``If-Range`` against the ETag: a
mismatch gets the whole body with 200), a start past the end gets 416 with
``Content-Range: bytes */LEN``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    count: int = 0  # bytes before a drop / of a truncated body
    delay: float = 0.0

    @staticmethod
    def http_error(code: int, retry_after: str | None = None, body: bytes = b"error\n") -> "Fault":
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return Fault("status", status=code, headers=headers, body=body)

    @staticmethod
    def drop_after(nbytes: int) -> "Fault":
        """Announce the full Content-Length, send ``nbytes`` of the body, close the socket."""
        return Fault("drop", count=nbytes)

    @staticmethod
    def html(body: bytes = b"<!DOCTYPE html><html><body>Please sign in</body></html>") -> "Fault":
        return Fault("html", body=body)

    @staticmethod
    def truncated(nbytes: int) -> "Fault":
        """A 200 whose body (and Content-Length) stops after ``nbytes``: a cut-off file."""
        return Fault("truncated", count=nbytes)

    @staticmethod
    def slow(delay: float) -> "Fault":
        """Sleep ``delay`` seconds before answering normally."""
        return Fault("slow", delay=delay)

    @staticmethod
    def wrong_body(data: bytes) -> "Fault":
        """Answer 200 with other bytes (wrong content for its checksum)."""
        return Fault("body", body=data)


@dataclass
class Request:
    path: str
    method: str
    range: str | None
    if_range: str | None
    status: int = 0
    sent: int = 0
    time: float = 0.0
    fault: str | None = None
    authorization: str | None = None


@dataclass
class Route:
    data: bytes
    content_type: str = "application/octet-stream"
    etag: str | None = None
    faults: list[Fault] = field(default_factory=list)
    auth: str | None = None  # required "Authorization" header value (401 otherwise)


class FaultyServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.inflight = 0  # requests being answered now
        self.max_inflight = 0  # the most ever answered at the same time
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._handle(self, head=False)

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # A short poll interval: shutdown() waits for one, and every test stops a server.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ setup
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, data: bytes, content_type: str = "application/octet-stream", etag: str | None = None, basic_auth: tuple[str, str] | None = None) -> str:
        auth = None
        if basic_auth:
            import base64

            auth = "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        with self._lock:
            self.routes[path] = Route(data, content_type, etag, auth=auth)
        return self.url(path)

    def fault(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self.routes[path].faults.extend(faults)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FaultyServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ serving
    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            self._answer(h, head)
        finally:
            with self._lock:
                self.inflight -= 1

    def _answer(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = h.path.split("?", 1)[0]
        rec = Request(path, h.command, h.headers.get("Range"), h.headers.get("If-Range"), time=time.monotonic(), authorization=h.headers.get("Authorization"))
        with self._lock:
            self.requests.append(rec)
            route = self.routes.get(path)
            fault = route.faults.pop(0) if route and route.faults else None
        rec.fault = fault.kind if fault else None
        if route is None:
            self._send(h, rec, 404, {"Content-Type": "text/plain"}, b"not found\n", head)
            return
        if route.auth and rec.authorization != route.auth:
            self._send(h, rec, 401, {"Content-Type": "text/plain", "WWW-Authenticate": 'Basic realm="test"'}, b"auth\n", head)
            return
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None
        if fault and fault.kind == "status":
            self._send(h, rec, fault.status, {"Content-Type": "text/plain", **fault.headers}, fault.body, head)
            return
        if fault and fault.kind == "html":
            self._send(h, rec, 200, {"Content-Type": "text/html; charset=utf-8"}, fault.body, head)
            return
        if fault and fault.kind == "body":
            self._send(h, rec, 200, {"Content-Type": route.content_type}, fault.body, head)
            return
        if fault and fault.kind == "truncated":
            self._send(h, rec, 200, {"Content-Type": route.content_type}, route.data[: fault.count], head)
            return
        data, status, headers = route.data, 200, {"Content-Type": route.content_type, "Accept-Ranges": "bytes"}
        if route.etag:
            headers["ETag"] = route.etag
        m = re.match(r"bytes=(\d+)-$", rec.range or "")
        if m and (rec.if_range is None or rec.if_range == route.etag):
            start = int(m.group(1))
            if start >= len(data):
                self._send(h, rec, 416, {"Content-Range": f"bytes */{len(data)}", "Content-Type": "text/plain"}, b"", head)
                return
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            data, status = data[start:], 206
        if fault and fault.kind == "drop":
            self._send(h, rec, status, headers, data, head, drop_after=fault.count)
            return
        self._send(h, rec, status, headers, data, head)

    def _send(self, h, rec: Request, status: int, headers: dict[str, str], body: bytes, head: bool, drop_after: int | None = None) -> None:
        rec.status = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        if drop_after is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        if head:
            return
        chunk = body if drop_after is None else body[:drop_after]
        try:
            h.wfile.write(chunk)
            h.wfile.flush()
            rec.sent = len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return
        if drop_after is not None:
            h.close_connection = True
            try:
                import socket

                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
