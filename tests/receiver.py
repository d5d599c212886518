"""A small local HTTP server that records what is POSTed to it (webhook alerts), for tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A small local HTTP server recording every POST (path and JSON body)."""

    def __init__(self, status: int = 200) -> None:
        received: list[tuple[str, dict[str, Any]]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body or b"{}")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, path: str, event: str | None = None, timeout: float = 120) -> dict[str, Any]:
        """The first body POSTed to a path starting with `path` (with that `event`, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, body in list(self.received):
                if at.startswith(path) and (event is None or body.get("event") == event):
                    return body
            time.sleep(0.2)
        what = f"a POST to {path}" + (f" with event {event}" if event else "")
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
