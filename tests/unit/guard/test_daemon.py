"""`sidecar guard`: one line and exit 2 on bad settings; serves until a stop, then removes its
socket; `sidecar guard check` pings through it."""

from __future__ import annotations

import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from sidecar.guard import daemon
from sidecar.shutdown import StopRequest

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


class Ping(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *_: object) -> None:
        pass


def test_bad_settings_exit_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys):
    """No targets: the guard says which variables, and does not start."""
    for name in ("APP_CONTAINERS", "APP_SERVICES", "APP_LABEL"):
        monkeypatch.delenv(name, raising=False)
    assert daemon.main(StopRequest()) == daemon.EXIT_CONFIG
    assert "invalid configuration: APP_CONTAINERS, APP_SERVICES or APP_LABEL" in (
        capsys.readouterr().err
    )


def test_it_serves_until_a_stop_and_its_check_pings_the_engine_through_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """The check answers 0 while it serves, 1 once it stopped; its socket is gone then."""
    engine = socketserver.UnixStreamServer(str(tmp_path / "engine.sock"), Ping)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    listen = tmp_path / "run" / "docker.sock"
    monkeypatch.setenv("APP_LABEL", "app=shop")
    monkeypatch.setenv("GUARD_SOCKET", str(listen))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'engine.sock'}")
    stopping = StopRequest()
    codes: list[int] = []
    serving = threading.Thread(target=lambda: codes.append(daemon.main(stopping)))
    serving.start()
    try:
        deadline = time.monotonic() + 10
        while not listen.is_socket() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert daemon.check() == 0
    finally:
        stopping.request()
        serving.join(timeout=10)
        engine.shutdown()
        engine.server_close()
    assert codes == [0]
    assert not listen.exists()
    assert daemon.check() == 1
