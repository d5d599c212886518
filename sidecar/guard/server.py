"""The guard's HTTP side: the standard library's server classes on a unix socket (keep-alive,
chunked request bodies, limits on the head, the body and the connections at once); every
request decided by `rules.decide`, let through to the engine or refused with 403 and one log
line. Answers are streamed back as they come (a chunked answer stays chunked)."""

from __future__ import annotations

import contextlib
import json
import socketserver
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from sidecar.errors import DockerError
from sidecar.guard import rules, upstream

if TYPE_CHECKING:
    from sidecar.guard.config import GuardSpec

PREFIX = "certbot-sidecar guard"
IDLE_TIMEOUT = 300.0  # an idle keep-alive connection is closed after it (it holds a slot)
CHUNK = 65536
_BUSY = json.dumps({"message": f"{PREFIX}: too many connections"}).encode()
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY)
)
NO_BODY = frozenset({204, 304})
SIZE_DIGITS = 16  # of a chunk's size: more is no size a body under the limit has


class BadRequestError(Exception):
    """The request cannot be read (its status and why)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def log(line: str) -> None:
    sys.stderr.write(f"{PREFIX}: {line}\n")
    sys.stderr.flush()


class GuardServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A thread per connection, at most `spec.max_connections` at once (more get 503)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, spec: GuardSpec, look: rules.Look) -> None:
        self.spec = spec
        self.look = look
        self._slots = threading.BoundedSemaphore(spec.max_connections)
        super().__init__(str(spec.listen), Handler)

    def process_request(self, request: Any, client_address: Any) -> None:  # noqa: ANN401
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:  # noqa: ANN401
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Handler(BaseHTTPRequestHandler):
    """One client connection: requests one after the other, each decided, then let through on
    this connection's own connection to the engine, or refused."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # no HTTP/0.9 answers (without a status line)
    timeout = IDLE_TIMEOUT
    server: GuardServer
    _engine: upstream.EngineConnection | None = None

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            if self._engine is not None:
                self._engine.close()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The parser's refusals (a bad request line, too many headers): JSON, then close."""
        del explain
        self.close_connection = True
        self._answer(code, message or HTTPStatus(code).phrase)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        """Quiet: only refusals and errors are logged (one line each)."""

    def _serve(self) -> None:
        spec = self.server.spec
        try:
            body = read_body(self, spec.max_head, spec.max_body)
        except BadRequestError as error:
            self.close_connection = True
            self._answer(error.status, str(error))
            return
        call = rules.Call(self.command, self.path, body)
        try:
            refused = rules.decide(call, spec.targets, self.server.look)
        except (DockerError, ValueError) as error:  # the engine down, or an answer not JSON
            log(f"cannot check {call.line}: {error}")
            self._answer(502, f"cannot check {call.line}: {error}")
            return
        if refused is not None:
            log(f"refused {call.line}: {refused}")
            self._answer(403, refused)
            return
        self._forward(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve  # noqa: N815

    def _forward(self, body: bytes) -> None:
        if self._engine is None:
            self._engine = upstream.EngineConnection(self.server.spec.engine)
        try:
            response = upstream.send(
                self._engine, self.command, self.path, list(self.headers.items()), body
            )
        except (OSError, upstream.HTTPError) as error:
            self._engine.close()
            self._engine = None
            log(f"the engine did not answer {self.command} {self.path}: {error}")
            self._answer(502, f"the Docker engine did not answer: {error}")
            return
        try:
            self._relay(response)
        except (OSError, upstream.HTTPError) as error:  # either side went away midway
            self.close_connection = True
            log(f"{self.command} {self.path}: the answer was cut off: {error}")
        if self.close_connection or response.will_close:
            self._engine.close()
            self._engine = None

    def _relay(self, response: upstream.Response) -> None:
        """The engine's answer, streamed: by its length, or re-chunked as it comes."""
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in upstream.HOP_BY_HOP:
                self.send_header(name, value)
        bodiless = (
            self.command == "HEAD" or response.status in NO_BODY or response.status < HTTPStatus.OK
        )
        if bodiless:
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
            self.end_headers()
            response.read()
            return
        if response.length is not None:
            self.send_header("Content-Length", str(response.length))
            self.end_headers()
            while data := response.read(CHUNK):
                self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while data := response.read1(CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _answer(self, status: int, rule: str) -> None:
        data = json.dumps({"message": f"{PREFIX}: {rule}"}).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def read_body(handler: BaseHTTPRequestHandler, head_limit: int, limit: int) -> bytes:
    """The request's body, by its Content-Length or its chunks (at most `limit` bytes), once
    its head is found no larger than `head_limit`."""
    if len(str(handler.headers)) > head_limit:
        raise BadRequestError(431, "the request's head is too large")
    coding = handler.headers.get_all("Transfer-Encoding") or []
    lengths = handler.headers.get_all("Content-Length") or []
    if coding:
        if lengths or [c.strip().lower() for c in coding] != ["chunked"]:
            raise BadRequestError(400, "only a chunked Transfer-Encoding, without a length")
        return read_chunks(handler.rfile, limit)
    if not lengths:
        return b""
    if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
        raise BadRequestError(400, "the Content-Length is not one number")
    length = int(lengths[0])
    if length > limit:
        raise BadRequestError(413, f"the body is larger than {limit} bytes")
    body = handler.rfile.read(length)
    if len(body) != length:
        raise BadRequestError(400, "the body ended early")
    return body


def read_chunks(rfile: Any, limit: int) -> bytes:  # noqa: ANN401 (a buffered reader)
    """A chunked body, decoded; its trailer read and dropped."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(CHUNK + 1)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not size_text or not _hex(size_text):
            raise BadRequestError(400, "a chunk's size line is not valid")
        size = int(size_text, 16)
        total += size
        if total > limit:
            raise BadRequestError(413, f"the body is larger than {limit} bytes")
        if size == 0:
            break
        data = rfile.read(size)
        if len(data) != size or rfile.read(2) != b"\r\n":
            raise BadRequestError(400, "a chunk ended early")
        parts.append(data)
    for _ in range(100):  # the trailer's fields, up to the blank line
        line = rfile.readline(CHUNK + 1)
        if line in {b"\r\n", b"\n"}:
            return b"".join(parts)
        if not line.endswith(b"\n"):
            break
    raise BadRequestError(400, "the chunked body's trailer is not valid")


def _hex(text: bytes) -> bool:
    return len(text) <= SIZE_DIGITS and all(c in b"0123456789abcdefABCDEF" for c in text)
