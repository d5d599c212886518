"""The guard's side of the engine's socket: the only module of the guard that speaks to the
engine (as `targets/engine.py` is the only one through the Docker SDK; ruff's banned-API rule
keeps `http.client` here). A connection per client connection for the calls let through, and
short reads of its own (`EngineLook`) for what the rules decide on."""

from __future__ import annotations

import http.client
import json
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sidecar.errors import DockerError

if TYPE_CHECKING:
    from pathlib import Path

LOOK_TIMEOUT = 30.0
NOT_FOUND = 404
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
Response = http.client.HTTPResponse
HTTPError = http.client.HTTPException  # for the server, which does not import http.client


class EngineConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the engine's unix socket; `timeout` None: a call waits as long as the
    engine takes (a stop waits out the app's stop timeout)."""

    def __init__(self, path: Path, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def send(
    conn: EngineConnection, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> Response:
    """Send one request as it came (less the hop-by-hop headers; the body whole, with its
    length) and return the engine's answer, its body not read yet."""
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP:
            conn.putheader(name, value)
    if body or method in {"POST", "PUT", "PATCH"}:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body or None)
    return conn.getresponse()


def pings(path: Path, timeout: float = 10.0) -> bool:
    """`GET /_ping` on the socket at `path` answers 200 (the guard's health: it and the engine)."""
    conn = EngineConnection(path, timeout)
    try:
        conn.request("GET", "/_ping", headers={"Host": "docker"})
        return conn.getresponse().status == http.client.OK
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class EngineLook:
    """The engine's current view of a container, a service or a secret (None on 404), each
    read on a connection of its own (`rules.Look`)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def container(self, ident: str) -> dict[str, Any] | None:
        return self._get(f"/containers/{quote(ident, safe='')}/json")

    def service(self, ident: str) -> dict[str, Any] | None:
        return self._get(f"/services/{quote(ident, safe='')}")

    def secret(self, ident: str) -> dict[str, Any] | None:
        return self._get(f"/secrets/{quote(ident, safe='')}")

    def _get(self, path: str) -> dict[str, Any] | None:
        conn = EngineConnection(self._path, LOOK_TIMEOUT)
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DockerError(f"cannot reach the Docker engine at {self._path}: {error}") from None
        finally:
            conn.close()
        if response.status == NOT_FOUND:
            return None
        if response.status != http.client.OK:
            raise DockerError(f"the engine answered {response.status} to GET {path}")
        found = json.loads(data)
        return found if isinstance(found, dict) else None
