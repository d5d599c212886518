"""Fault injectors for e2e tests, run in the test process on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    import ssl

# What the sidecar may ask of the Docker API (as a socket proxy would allow, e.g. one that passes
# only container list/inspect/start/stop/restart/kill): everything else gets 403.
_V = rb"/(v[\d.]+/)?"
_CONTAINERS = (
    rb"GET " + _V + rb"(_ping|version|containers/json|containers/[\w.-]+/json)"
    rb"|HEAD " + _V + rb"_ping"
    rb"|POST " + _V + rb"containers/[\w.-]+/(start|stop|restart|kill)"
)
ALLOWED = re.compile(rb"^(" + _CONTAINERS + rb")[ ?]")


def _swarm_allowed(posts: bytes) -> re.Pattern[bytes]:
    """The container calls, reading services, tasks and secrets, removing secrets, and `posts`."""
    return re.compile(
        rb"^("
        + _CONTAINERS
        + rb"|GET "
        + _V
        + rb"(services|services/[\w.-]+|tasks|secrets)"
        + rb"|POST "
        + _V
        + rb"("
        + posts
        + rb")"
        + rb"|DELETE "
        + _V
        + rb"secrets/[\w.-]+"
        + rb")[ ?]"
    )


# In a swarm (README "Privileges"): those, and services, tasks and secrets.
SWARM_ALLOWED = _swarm_allowed(rb"services/[\w.-]+/update|secrets/create")
# A proxy that lets the sidecar scale services but refuses `POST /secrets/create`.
SWARM_NO_SECRET_CREATE = _swarm_allowed(rb"services/[\w.-]+/update")


class _Server:
    """A TCP listener (on 127.0.0.1 unless `host` says) handling each connection in a thread
    until `close()`."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, port))
        self.port: int = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - overridden
        conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class BlackHole(_Server):
    """Accepts connections and never answers: the CA's validation hangs while the app is down."""

    def handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(4096):
                pass


class Relay(_Server):
    """A TCP relay to 127.0.0.1:`target` (the challenge port: the CA validates through it) that
    `hold()` turns into a black hole: from then on the CA's validation hangs with the app down,
    after the certificates could be issued normally."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.holding = False
        super().__init__()

    def hold(self) -> None:
        self.holding = True

    def handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            if self.holding:
                while conn.recv(4096):
                    pass
                return
            _relay(conn, ("127.0.0.1", self.target), timeout=30)


class Gate(_Server):
    """A TCP proxy to `target` that holds every connection until `open()`: the CA's validation
    waits while the app is down for the challenge, for as long as a test needs (a node lost,
    say), and then goes through."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.opened = threading.Event()
        self.waiting = threading.Event()  # a connection is held
        super().__init__(0, host)

    def open(self) -> None:
        self.opened.set()

    def hold(self) -> None:
        """Hold the next connections again (those already let through go on)."""
        self.opened.clear()
        self.waiting.clear()

    def handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.waiting.set()
            self.opened.wait()
            _relay(conn, self.target, timeout=10)


def _relay(conn: socket.socket, target: tuple[str, int], timeout: float) -> None:
    """Both ways between `conn` and a new connection to `target`, until either side ends."""
    with socket.create_connection(target, timeout=timeout) as upstream:
        back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
        back.start()
        _pipe(conn, upstream)
        back.join(timeout=30)


class DockerProxy(_Server):
    """An allow-listing TCP proxy to the Docker socket (what DOCKER_HOST=tcp://... points at)."""

    def __init__(
        self,
        port: int = 0,
        target: str = "/var/run/docker.sock",
        tls: ssl.SSLContext | None = None,
        allowed: re.Pattern[bytes] = ALLOWED,
    ) -> None:
        self.target = target
        self.tls = tls
        self.allowed = allowed
        self.denied: list[bytes] = []
        super().__init__(port)

    def handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            head = _read_request(conn)
            if not self.allowed.match(head):
                self.denied.append(head.split(b"\r\n", 1)[0])
                conn.sendall(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            line, _, rest = re.sub(rb"\r\nConnection: [^\r]*", b"", head).partition(b"\r\n")
            upstream.sendall(line + b"\r\nConnection: close\r\n" + rest)
            _pipe(upstream, conn)  # one request per connection: only the answer flows back


def _read_request(conn: socket.socket) -> bytes:
    """One whole HTTP request: the head, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"\r\nContent-Length: *(\d+)", head, re.IGNORECASE)
    length = int(match[1]) if match else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
