"""Real HTTP servers on 127.0.0.1 for the notification tests: one that records the POSTs it
receives, one that answers 500, one that never answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Behaviour = Literal["ok", "error", "hang"]


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)  # port 0: a free one
        self.behaviour = behaviour
        self.received: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.release = threading.Event()  # lets a hanging handler go at the end

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(json.loads(body))
        self.server.headers_seen.append(dict(self.headers))
        if self.server.behaviour == "hang":
            self.server.release.wait(60)  # never answers while the test runs
            return
        status = 200 if self.server.behaviour == "ok" else 500
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"broken")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@contextmanager
def webhook_server(behaviour: Behaviour = "ok") -> Iterator[WebhookServer]:
    server = WebhookServer(behaviour)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
