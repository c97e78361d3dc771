"""The provider-neutral part of the fake servers: a threaded HTTP server, a script, a request log."""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request the server received, as sent on the wire."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


#: A reply body: JSON-able data, raw text/bytes (sent as is), or a function of the request.
Body = Any | Callable[[Recorded], Any]


@dataclass
class Reply:
    """What the server answers to one model call."""

    status: int = 200
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    #: Hold the request without answering until the server stops (the client has to time out).
    hang: bool = False
    #: Close the connection with a TCP reset instead of answering.
    reset: bool = False

    def encode(self, request: Recorded) -> bytes:
        body = self.body(request) if callable(self.body) else self.body
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode()
        return json.dumps(body).encode()


#: Decides the reply to a model call when the script is empty; a plain string means "answer this text".
Responder = Callable[[Recorded], Reply | str]


class FakeServer:
    """A local HTTP server speaking one provider's wire protocol; subclasses supply the dialect.

    Model calls are answered from the script (FIFO) first, then by ``responder``, then with
    ``default_text``. Requests to other paths get the provider's 404; requests with a wrong key
    get the provider's authentication error, both without consuming the script.
    """

    provider = ""

    def __init__(
        self,
        *,
        api_key: str = "test-key-0123456789abcdef",
        models: set[str] | None = None,
        default_text: str = "ok",
        responder: Responder | None = None,
    ) -> None:
        self.api_key = api_key
        self.models = models  # None: every model exists
        self.default_text = default_text
        self.responder = responder
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ dialect (subclasses)

    @property
    def base_url(self) -> str:
        """The URL to give the provider's SDK (or our settings) as its base URL."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Environment variables that point the orchestrator at this server."""
        raise NotImplementedError

    def is_model_call(self, request: Recorded) -> bool:
        raise NotImplementedError

    def model_of(self, request: Recorded) -> str:
        raise NotImplementedError

    def is_authorized(self, request: Recorded) -> bool:
        raise NotImplementedError

    def messages(self, request: Recorded) -> list[dict[str, str]]:
        """The request's conversation as ``[{"role": system|user|assistant, "content": text}]``."""
        raise NotImplementedError

    def reply(
        self,
        text: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        response_id: str | None = None,
    ) -> Reply:
        """A successful answer carrying ``text`` (token counts default to word counts)."""
        raise NotImplementedError

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        """An error in the provider's own shape; ``retry_after`` becomes its Retry-After signal."""
        raise NotImplementedError

    def unauthorized(self, request: Recorded) -> Reply:
        return self.error(401, "invalid api key")

    def invalid(self, request: Recorded) -> Reply | None:
        """The provider's 400 for a request its API would reject (missing fields), else None."""
        return None

    def unknown_model(self, model: str) -> Reply:
        return self.error(404, f"model {model!r} not found")

    # ------------------------------------------------------------------ scripting

    def script(self, *replies: Reply | str) -> None:
        """Queue replies for the next model calls, in order (a string is a successful answer)."""
        with self._lock:
            self._script.extend(self.reply(r) if isinstance(r, str) else r for r in replies)

    def malformed(self) -> Reply:
        """A 200 whose body is not JSON (a proxy or a half-written answer)."""
        return Reply(status=200, body=b'{"id": "trunc', content_type="application/json")

    def hang(self) -> Reply:
        return Reply(hang=True)

    def reset(self) -> Reply:
        """No answer: the connection is reset (RST) after the request was read."""
        return Reply(reset=True)

    @property
    def model_calls(self) -> list[Recorded]:
        return [r for r in self.requests if self.is_model_call(r)]

    def prompt_words(self, request: Recorded) -> int:
        return sum(len(m["content"].split()) for m in self.messages(request))

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for the serving loop to notice, once per interval.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name=f"fake-{self.provider}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving, close the port (safe to call twice)."""
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ request handling

    def _decide(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self.is_model_call(request):
                return self.error(404, f"no route for {request.method} {request.path}")
            if not self.is_authorized(request):
                return self.unauthorized(request)
            rejection = self.invalid(request)
            if rejection is not None:
                return rejection
            model = self.model_of(request)
            if self.models is not None and model not in self.models:
                return self.unknown_model(model)
            if self._script:
                return self._script.popleft()
        answer = self.responder(request) if self.responder else self.default_text
        return self.reply(answer) if isinstance(answer, str) else answer

    def _wait_released(self) -> None:
        self._released.wait()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer
    # HTTP/1.0: one request a connection, so no handler thread outlives a client's pooled socket.
    protocol_version = "HTTP/1.0"

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        request = Recorded(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.fake._decide(request)
        if reply.hang:
            self.fake._wait_released()
            return
        if reply.reset:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            self.wfile = io.BytesIO()  # finish() flushes it; the socket is gone
            return
        payload = reply.encode(request)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
