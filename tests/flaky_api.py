"""A real HTTP proxy in front of the real Prefect server that answers some requests ``503`` itself.

Outages come in runs: of every ``every`` requests under ``/api/`` the first ``outage`` get
``503 Service Unavailable`` (with ``Retry-After: 0``, so that clients' back-off stays short in a
test), the rest are forwarded. Counting is global, as an overloaded or restarting server fails
whoever asks; ``injected`` and ``forwarded`` say what happened.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar

import httpx

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class FlakyProxy:
    def __init__(self, upstream: str, *, outage: int, every: int) -> None:
        """``upstream``: the server's API URL (``http://host:port/api``)."""
        self.origin = upstream.removesuffix("/api").rstrip("/")
        self.outage, self.every = outage, every
        self.injected = self.forwarded = 0
        self._count = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.origin, timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version: ClassVar[str] = "HTTP/1.1"

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.api_url = f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def _fail_now(self, path: str) -> bool:
        if not path.startswith("/api/"):
            return False
        with self._lock:
            self._count += 1
            fail = (self._count - 1) % self.every < self.outage
            if fail:
                self.injected += 1
            else:
                self.forwarded += 1
            return fail

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        if self._fail_now(req.path):
            payload = b'{"detail":"Service Unavailable (injected by the test proxy)"}'
            req.send_response(503)
            req.send_header("Retry-After", "0")
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)
            return
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        resp = self._client.request(req.command, req.path, content=body, headers=headers)
        req.send_response(resp.status_code)
        for key, value in resp.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                req.send_header(key, value)
        req.send_header("Content-Length", str(len(resp.content)))
        req.end_headers()
        req.wfile.write(resp.content)

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self._server.serve_forever, name="flaky-api", daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
