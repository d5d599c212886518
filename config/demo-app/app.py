"""Demo HTTPS web app of the kind certbot-sidecar users run (standard library only).

Serves plain HTTP on HTTP_PORT at once and HTTPS on HTTPS_PORT with the certbot
lineage $LE_DIR/live/$CERT_NAME, waiting until that exists. The certificate is
loaded once at start, like a real app; SIGHUP reloads it in place. With
ACME_WEBROOT set (the sidecar's CHALLENGE=webroot), it answers ACME challenges
itself from that directory, through certbot-sidecar's appkit (copied beside it).
"""
# ruff: noqa: INP001, T201

from __future__ import annotations

import os
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from appkit import challenge_response  # certbot-sidecar's sidecar/appkit.py, copied beside us

CERT_NAME = os.environ["CERT_NAME"]
LE_DIR = Path(os.environ.get("LE_DIR", "/etc/letsencrypt"))
HTTP_PORT = int(os.environ.get("HTTP_PORT", "80"))
HTTPS_PORT = int(os.environ.get("HTTPS_PORT", "443"))
LIVE = LE_DIR / "live" / CERT_NAME
FULLCHAIN, PRIVKEY = LIVE / "fullchain.pem", LIVE / "privkey.pem"
WEBROOT = os.environ.get("ACME_WEBROOT")


def log(message: str) -> None:
    print(f"demo-app: {message}", flush=True)


class Handler(BaseHTTPRequestHandler):
    serial: ClassVar[str] = "none"  # hex serial of the certificate currently loaded

    def do_GET(self) -> None:
        challenge = challenge_response(self.path) if WEBROOT else None
        if challenge is not None:
            self._reply(challenge, "application/octet-stream")
            return
        if isinstance(self.connection, ssl.SSLSocket):
            body = f"hello from the demo app\nserial: {self.serial}\n"
        else:
            body = f"demo app: plain HTTP; HTTPS on port {HTTPS_PORT}\n"
        self._reply(body.encode(), "text/plain; charset=utf-8")

    def _reply(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        log(f"{scheme} {self.client_address[0]} {fmt % args}")


class Server(ThreadingHTTPServer):
    def handle_error(self, _request: object, client_address: object) -> None:
        log(f"error serving {client_address}: {sys.exc_info()[1]!r}")  # one line, no traceback


def load(ctx: ssl.SSLContext) -> None:
    ctx.load_cert_chain(FULLCHAIN, PRIVKEY)
    cert = ssl._ssl._test_decode_cert(str(FULLCHAIN))  # type: ignore[attr-defined]  # noqa: SLF001
    Handler.serial = cert["serialNumber"]
    log(f"loaded certificate serial {Handler.serial} from {LIVE}")


def serve(port: int, ctx: ssl.SSLContext | None = None) -> Server:
    server = Server(("", port), Handler)
    if ctx is not None:
        # Handshake lazily in the request thread, so a slow client cannot block accept().
        server.socket = ctx.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"serving {'HTTPS' if ctx else 'HTTP'} on port {port}")
    return server


def main() -> int:
    stop = threading.Event()
    ctx: ssl.SSLContext | None = None

    def on_hup(*_: object) -> None:
        if ctx is None:
            log("SIGHUP: no certificate loaded yet")
            return
        log("SIGHUP: reloading certificate")
        try:
            load(ctx)
        except (OSError, ssl.SSLError) as exc:
            log(f"reload failed, keeping the old certificate: {exc}")

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, on_hup)

    servers = [serve(HTTP_PORT)]
    if not (FULLCHAIN.exists() and PRIVKEY.exists()):
        log(f"waiting for {FULLCHAIN} and {PRIVKEY}")
    while not (FULLCHAIN.exists() and PRIVKEY.exists()):
        if stop.wait(0.5):
            break
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        load(ctx)
        servers.append(serve(HTTPS_PORT, ctx))
    while not stop.wait(1):
        pass
    log("stopping")
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
