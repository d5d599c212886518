"""For apps that cooperate with the sidecar (CHALLENGE=webroot): no stop at renewal at all.

Standard library only: import it from the certbot-sidecar package, or copy this one file into the
app. Two pieces:

- Answer `/.well-known/acme-challenge/TOKEN` from the webroot the sidecar writes on the shared
  volume (`ACME_WEBROOT`, default `/etc/letsencrypt/webroot`): `AcmeChallengeWSGI` and
  `AcmeChallengeASGI` wrap an app; `challenge_response(path)` serves the standard library's
  `http.server` handlers (or anything else).
- Reload the certificate in place: `CertReloader(ctx, fullchain, privkey).on_signal()` calls
  `ctx.load_cert_chain` again when the sidecar sends RELOAD_SIGNAL (SIGHUP by default); new
  TLS connections get the new certificate, open ones keep theirs.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # RFC 8555 tokens are base64url

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


def webroot() -> Path:
    return Path(os.environ.get("ACME_WEBROOT", "/etc/letsencrypt/webroot"))


def challenge_response(path: str, root: Path | None = None) -> bytes | None:
    """The key authorization for an ACME challenge path, None for any other path or token."""
    if not path.startswith(PREFIX):
        return None
    token = path[len(PREFIX) :].split("?", 1)[0]
    if not _TOKEN.match(token):
        return None
    try:
        return ((root or webroot()) / ".well-known" / "acme-challenge" / token).read_bytes()
    except OSError:
        return None


class AcmeChallengeWSGI:
    """WSGI middleware: challenge paths answered from the webroot, the rest passed to `app`."""

    def __init__(self, app: WSGIApp, root: Path | None = None) -> None:
        self.app, self.root = app, root

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = challenge_response(environ.get("PATH_INFO", ""), self.root)
        if body is None:
            return self.app(environ, start_response)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]


class AcmeChallengeASGI:
    """ASGI middleware: challenge paths answered from the webroot, the rest passed to `app`."""

    def __init__(self, app: ASGIApp, root: Path | None = None) -> None:
        self.app, self.root = app, root

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        body = (
            challenge_response(scope.get("path", ""), self.root)
            if scope.get("type") == "http"
            else None
        )
        if body is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class CertReloader:
    """Loads a certificate into an SSLContext, and again on a signal (in place, no restart)."""

    def __init__(self, ctx: ssl.SSLContext, fullchain: Path, privkey: Path) -> None:
        self.ctx, self.fullchain, self.privkey = ctx, fullchain, privkey
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            self.ctx.load_cert_chain(self.fullchain, self.privkey)

    def on_signal(self, signum: int = signal.SIGHUP, report: Callable[[str], None] = print) -> None:
        """Reload on `signum`; a failed reload keeps the old certificate and says why."""

        def handler(*_: object) -> None:
            try:
                self.load()
                report(f"reloaded {self.fullchain}")
            except (OSError, ssl.SSLError) as error:
                report(f"reload of {self.fullchain} failed, keeping the old certificate: {error}")

        signal.signal(signum, handler)
