"""appkit: what a cooperating app uses to answer challenges and reload in place."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
from typing import TYPE_CHECKING

import pytest

from sidecar.appkit import (
    AcmeChallengeASGI,
    AcmeChallengeWSGI,
    CertReloader,
    challenge_response,
)

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / ".well-known" / "acme-challenge"
    folder.mkdir(parents=True)
    (folder / TOKEN).write_bytes(b"key-authorization")
    (tmp_path / "secret.txt").write_text("not for the world")
    return tmp_path


def test_challenge_path_is_answered_from_the_webroot(root):
    """The token file's content is the response."""
    assert challenge_response(f"/.well-known/acme-challenge/{TOKEN}", root) == b"key-authorization"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/index.html",
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge/missing",
        "/.well-known/acme-challenge/../../secret.txt",
        "/.well-known/acme-challenge/a/b",
    ],
)
def test_other_paths_and_traversal_attempts_are_not_answered(root, path):
    """Only base64url tokens under the challenge prefix; nothing else leaves the webroot."""
    assert challenge_response(path, root) is None


def test_wsgi_middleware_answers_challenges_and_passes_the_rest(root):
    """Challenge requests never reach the app; others do."""
    seen: list[str] = []

    def app(environ, start_response):
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"app"]

    wrapped = AcmeChallengeWSGI(app, root)
    statuses: list[str] = []
    body = wrapped(
        {"PATH_INFO": f"/.well-known/acme-challenge/{TOKEN}"},
        lambda status, _headers: statuses.append(status),
    )
    assert list(body) == [b"key-authorization"]
    assert statuses == ["200 OK"]
    assert list(wrapped({"PATH_INFO": "/"}, lambda *_: None)) == [b"app"]
    assert seen == ["/"]


def test_asgi_middleware_answers_challenges_and_passes_the_rest(root):
    """The ASGI wrapper sends the key authorization; other requests go to the app."""
    sent: list[dict[str, object]] = []
    seen: list[str] = []

    async def app(scope, _receive, _send):
        seen.append(scope["path"])

    async def send(message):
        sent.append(message)

    async def receive():
        return {}

    wrapped = AcmeChallengeASGI(app, root)
    asyncio.run(
        wrapped({"type": "http", "path": f"/.well-known/acme-challenge/{TOKEN}"}, receive, send)
    )
    asyncio.run(wrapped({"type": "http", "path": "/"}, receive, send))
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"key-authorization"
    assert seen == ["/"]


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-noenc",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_reloader_loads_the_new_certificate_on_its_signal_and_keeps_the_old_on_error(tmp_path):
    """SIGHUP reloads in place; a broken file is reported and the context keeps working."""
    cert, key = _self_signed(tmp_path, "one")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    reloader = CertReloader(ctx, cert, key)
    reloader.load()
    reports: list[str] = []
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        reloader.on_signal(signal.SIGUSR1, reports.append)
        signal.raise_signal(signal.SIGUSR1)
        cert.write_text("broken")
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert reports[0].startswith("reloaded")
    assert "failed, keeping the old certificate" in reports[1]
