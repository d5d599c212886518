"""The guard's HTTP side against a fake engine on a unix socket: keep-alive, chunked bodies,
streamed answers, limits, refusals; and a fuzz run of its request parsing."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.guard.config import GuardSpec
from sidecar.guard.server import BadRequestError, GuardServer, read_chunks
from sidecar.guard.upstream import EngineConnection, EngineLook
from sidecar.targets.spec import TargetsSpec

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class EngineHandler(BaseHTTPRequestHandler):
    """A fake engine: inspect answers, an echo of POST bodies, a chunked stream."""

    protocol_version = "HTTP/1.1"
    server: Engine

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        path = re.sub(r"^/v[\d.]+", "", self.path)
        if path == "/tasks":  # answered chunked, as a stream would be
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one\n", b"two\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if path.startswith("/containers/web/"):
            self._json(200, {"Id": "w1", "Name": "/web", "Config": {"Labels": {}}})
            return
        if path.startswith("/containers/db/"):
            self._json(200, {"Id": "d1", "Name": "/db", "Config": {"Labels": {}}})
            return
        self._json(404 if "/containers/" in path else 200, {"path": self.path})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.seen.append((self.path, body, self.headers.get("Transfer-Encoding")))
        self._json(200, {"path": self.path, "length": length})

    def _json(self, status: int, value: object) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.seen: list[tuple[str, bytes, str | None]] = []
        super().__init__(str(path), EngineHandler)


@dataclasses.dataclass
class Bed:
    guard: Path
    engine: Engine

    def connect(self) -> EngineConnection:
        conn = EngineConnection(self.guard, timeout=10)
        conn.connect()
        return conn

    def raw(self, data: bytes) -> bytes:
        """Send bytes as they are; all the guard answers until it closes (or 2 s pass)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.guard))
            with contextlib.suppress(OSError):  # the guard may have answered and closed already
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            answer = b""
            with contextlib.suppress(TimeoutError, OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
            return answer


def serve(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def running(tmp_path: Path, **limits: int) -> Iterator[Bed]:
    engine = Engine(tmp_path / "engine.sock")
    targets = TargetsSpec(containers=("web",))
    spec = GuardSpec(tmp_path / "guard.sock", tmp_path / "engine.sock", targets, **limits)
    guard = GuardServer(spec, EngineLook(spec.engine))
    serve(engine)
    serve(guard)
    try:
        yield Bed(spec.listen, engine)
    finally:
        guard.shutdown()
        guard.server_close()
        engine.shutdown()
        engine.server_close()


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    with running(tmp_path) as bed:
        yield bed


def test_keep_alive_serves_several_requests_on_one_connection(bed: Bed):
    """Reads and an allowed stop, one after the other on the same connection."""
    conn = bed.connect()
    for path in ("/v1.41/version", "/v1.41/containers/web/json"):
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        response.read()
    conn.request("POST", "/v1.41/containers/web/stop?t=10")
    assert json.loads(conn.getresponse().read())["path"] == "/v1.41/containers/web/stop?t=10"
    conn.close()


def test_a_chunked_body_reaches_the_engine_whole_with_its_length(bed: Bed):
    """The guard decodes the chunks (to decide on the body) and sends it with a length."""
    answer = bed.raw(
        b"POST /v1.41/containers/web/start HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b'3\r\n{"a\r\n4;x=y\r\n": 1\r\n1\r\n}\r\n0\r\nTrailer: z\r\n\r\n'
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert bed.engine.seen == [("/v1.41/containers/web/start", b'{"a": 1}', None)]


def test_a_chunked_answer_is_streamed_back_chunked(bed: Bed):
    """A streaming answer (no length) reaches the client as it comes, chunked."""
    conn = bed.connect()
    conn.request("GET", "/v1.41/tasks")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == b"one\ntwo\n"


def test_a_refused_call_gets_403_naming_the_rule_and_one_log_line(bed: Bed, capsys):
    """Another container's stop: 403, the JSON body names the rule; the connection stays."""
    conn = bed.connect()
    conn.request("POST", "/v1.41/containers/db/stop")
    response = conn.getresponse()
    assert response.status == 403
    message = json.loads(response.read())["message"]
    assert message.startswith("certbot-sidecar guard: stop of container db: not a container")
    conn.request("GET", "/_ping")
    assert conn.getresponse().status == 200
    logged = capsys.readouterr().err.splitlines()
    assert [line for line in logged if "refused" in line] == [
        "certbot-sidecar guard: refused POST /containers/db/stop: " + message.split(": ", 1)[1]
    ]
    assert bed.engine.seen == []


def test_bodies_and_heads_over_the_limits_are_refused_before_anything_is_sent(tmp_path):
    """413 for a body over the limit, 431 for a head over it; the engine sees nothing."""
    with running(tmp_path, max_body=10, max_head=200) as bed:
        big = b"POST /secrets/create HTTP/1.1\r\nContent-Length: 11\r\n\r\n" + b"x" * 11
        assert bed.raw(big).startswith(b"HTTP/1.1 413")
        chunked = b"POST /secrets/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n"
        assert bed.raw(chunked + b"x" * 11 + b"\r\n0\r\n\r\n").startswith(b"HTTP/1.1 413")
        head = b"GET /_ping HTTP/1.1\r\nX-Pad: " + b"p" * 300 + b"\r\n\r\n"
        assert bed.raw(head).startswith(b"HTTP/1.1 431")
        assert bed.engine.seen == []


def test_a_length_and_a_chunked_coding_together_are_refused(bed: Bed):
    """Both framings at once (request smuggling): 400, nothing sent."""
    answer = bed.raw(
        b"POST /containers/web/start HTTP/1.1\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert bed.engine.seen == []


def test_connections_beyond_the_cap_get_503(tmp_path):
    """With one connection allowed, a second one open at once is answered 503 and closed."""
    with running(tmp_path, max_connections=1) as bed:
        held = bed.connect()
        held.request("GET", "/_ping")
        held.getresponse().read()
        assert bed.raw(b"GET /_ping HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503")
        held.close()


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_chunked_bodies_decode_to_what_was_sent(parts):
    """Any body, in any chunks, decodes to its bytes."""
    assert read_chunks(io.BufferedReader(io.BytesIO(chunked(parts))), 10_000) == b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_a_chunked_body_decode_or_are_refused(data):
    """The chunk parser either decodes or raises BadRequestError: no other outcome."""
    with contextlib.suppress(BadRequestError):
        read_chunks(io.BufferedReader(io.BytesIO(data)), 100)


_REQUEST = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda method, path, headers, body: (
            b"%s %s HTTP/1.1\r\n%s\r\n%s" % (method, path, headers, body)
        ),
        st.sampled_from([b"GET", b"POST", b"DELETE", b"HEAD", b"BREW"]),
        st.sampled_from(
            [b"/_ping", b"/v1.41/containers/web/stop", b"/containers/db/kill", b"/secrets/create"]
        ),
        st.lists(
            st.sampled_from(
                [
                    b"Content-Length: 4\r\n",
                    b"Content-Length: -1\r\n",
                    b"Content-Length: 99999999999\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"Transfer-Encoding: gzip\r\n",
                    b"Connection: close\r\n",
                    b"X: \xff\r\n",
                ]
            ),
            max_size=4,
        ).map(b"".join),
        st.binary(max_size=40),
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_REQUEST)
def test_any_request_bytes_get_an_http_answer_or_a_close_and_the_guard_keeps_serving(bed, data):
    """Fuzz: whatever bytes come, the guard answers HTTP or closes, and still serves after."""
    answer = bed.raw(data)
    assert answer == b"" or answer.startswith(b"HTTP/1.")
    assert bed.raw(b"GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_an_engine_that_does_not_answer_gets_502_for_reads_and_checks(tmp_path):
    """No engine behind the guard: a read and a change it must check both get 502, not 403."""
    targets = TargetsSpec(containers=("web",))
    spec = GuardSpec(tmp_path / "guard.sock", tmp_path / "gone.sock", targets)
    guard = GuardServer(spec, EngineLook(spec.engine))
    serve(guard)
    try:
        conn = EngineConnection(spec.listen, timeout=10)
        for method, path in (("GET", "/_ping"), ("POST", "/v1.41/containers/web/stop")):
            conn.request(method, path)
            response = conn.getresponse()
            assert response.status == 502
            assert json.loads(response.read())["message"].startswith("certbot-sidecar guard: ")
        conn.close()
    finally:
        guard.shutdown()
        guard.server_close()
