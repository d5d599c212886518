"""Real parts for e2e tests: the Docker engine, Pebble, the demo app and the sidecar image."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import docker
import docker.errors
import docker.models.containers
from cryptography import x509

from tests.e2e.authz import forget_authorizations

if TYPE_CHECKING:
    from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[2]
# docker-py's high-level run() lacks the create option `stop_timeout` (Config.StopTimeout, what
# compose's stop_grace_period sets); the low-level create_container has it.
if "stop_timeout" not in docker.models.containers.RUN_CREATE_KWARGS:
    docker.models.containers.RUN_CREATE_KWARGS.append("stop_timeout")
TAG = os.environ.get("E2E_IMAGE_TAG", "e2e")  # another tag keeps parallel checkouts apart
SIDECAR_IMAGE = f"certbot-sidecar:{TAG}"
PEBBLE_IMAGE = f"certbot-sidecar/pebble:{TAG}"
APP_IMAGE = f"certbot-sidecar/demo-app:{TAG}"
DNS_IMAGE = f"certbot-sidecar/dns:{TAG}"  # bind9 for dns-01 (config/dns; helpers in dns.py)
E2E_LABEL = "certbot-sidecar.e2e"
SESSION_LABEL = "certbot-sidecar.e2e-session"
SESSION = uuid.uuid4().hex[:12]  # this test process: its cleanup removes only its own
SOCKET = "/var/run/docker.sock"
GUARD_DIR = "/run/guard"  # where `sidecar guard` serves its socket (its and the sidecar's)
GUARDED_HOST = f"unix://{GUARD_DIR}/docker.sock"
TARGET_VARIABLES = ("APP_CONTAINERS", "APP_SERVICES", "APP_LABEL")


def base_image() -> str:
    """BASE_IMAGE, or else the base tests/prepare.sh makes ready (python:3.13-slim when it can be
    pulled, a local Debian trixie base when nothing can be): as `bash tests/run` does."""
    if not os.environ.get("BASE_IMAGE"):
        prepare = ROOT / "tests" / "prepare.sh"
        done = subprocess.run(["bash", str(prepare)], stdout=subprocess.PIPE, text=True, check=True)
        line = done.stdout.strip().splitlines()[-1]
        os.environ["BASE_IMAGE"] = line.removeprefix("BASE_IMAGE=")
    return os.environ["BASE_IMAGE"]


def build_images(client: docker.DockerClient) -> None:
    """Build the four images from this checkout, on the configured base."""
    for tag, context, dockerfile, extras in (
        # with apprise, to test ALERT_URLS, and certbot-dns-rfc2136, for dns-01 against DNS_IMAGE
        (SIDECAR_IMAGE, ROOT, "Dockerfile", "alerts,dns-rfc2136"),
        (PEBBLE_IMAGE, ROOT / "config" / "pebble", "Dockerfile", ""),
        (APP_IMAGE, ROOT, "config/demo-app/Dockerfile", ""),
        (DNS_IMAGE, ROOT / "config" / "dns", "Dockerfile", ""),
    ):
        client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs={"BASE_IMAGE": base_image(), "EXTRAS": extras},
            rm=True,
            forcerm=True,
        )


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for(what: str, check: object, timeout: float = 60.0, every: float = 0.2) -> object:
    """Poll `check()` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
            if last:
                return last
        except (OSError, docker.errors.APIError) as error:
            last = error
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def served_serial(port: int, name: str, host: str = "127.0.0.1") -> int:
    """The serial of the certificate the app presents for SNI `name` on host:port."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def disk_serial(le_dir: Path, name: str) -> int:
    pem = (le_dir / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def disk_cert(le_dir: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((le_dir / "live" / name / "cert.pem").read_bytes())


@dataclass
class Stack:
    """One isolated test world: its own Pebble, app container, ports, volume dir and label."""

    client: docker.DockerClient
    tmp: Path
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    ports: list[int] = field(default_factory=lambda: free_ports(6))
    containers: list[Container] = field(default_factory=list)
    # More mounts for every sidecar container, e.g. the DNS bed's credentials (dns.start_dns).
    sidecar_volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    # True: Pebble may reuse valid authorizations (as its PEBBLE_AUTHZREUSE says); else they are
    # deactivated before each sidecar run, so each order has a challenge (see authz.py)
    keep_authorizations: bool = False
    # True: every sidecar given the socket reaches it through `sidecar guard` (started with the
    # sidecar's targets), as the shipped compose files run it; E2E_GUARD=0 runs the whole suite
    # on the raw socket instead
    guarded: bool = field(default_factory=lambda: os.environ.get("E2E_GUARD", "1") != "0")
    guards: list[Container] = field(default_factory=list)
    # one guard per set of targets, reused by the sidecars of this world while it runs
    guard_dirs: dict[tuple[tuple[str, str], ...], tuple[Container, Path]] = field(
        default_factory=dict
    )
    refusing: bool = False  # True: the test makes its guard refuse calls (else none may be)

    @property
    def domain(self) -> str:
        return f"app-{self.uid}.example.com"

    @property
    def le_dir(self) -> Path:
        return self.tmp / "letsencrypt"

    @property
    def ca_dir(self) -> Path:
        return self.tmp / "pebble-ca"

    @property
    def acme_url(self) -> str:
        return f"https://localhost:{self.ports[0]}/dir"

    @property
    def http_port(self) -> int:
        return self.ports[4]

    @property
    def https_port(self) -> int:
        return self.ports[5]

    @property
    def app_label(self) -> str:
        return f"certbot-sidecar.test={self.uid}"

    def _run(self, image: str, name: str, **kwargs: object) -> Container:
        labels = {E2E_LABEL: self.uid, SESSION_LABEL: SESSION, **kwargs.pop("labels", {})}  # type: ignore[dict-item]
        container = self.client.containers.run(
            image, name=f"cbs-{name}-{self.uid}", detach=True, labels=labels, **kwargs
        )
        self.containers.append(container)
        return container

    def create(self, name: str, image: str = APP_IMAGE) -> Container:
        """A container created and never started (a decoy for the selection), labelled for
        cleanup like the others."""
        labels = {E2E_LABEL: self.uid, SESSION_LABEL: SESSION}
        container = self.client.containers.create(image, name=name, labels=labels)
        self.containers.append(container)
        return container

    def place(self, name: str) -> tuple[str, dict[str, Any]]:
        """Where a helper container (Pebble, the DNS bed) listens, and the run options that put
        it there: loopback of the host network (a multi-node bed puts each on its network)."""
        del name
        return "127.0.0.1", {"network_mode": "host"}

    def start_pebble(
        self,
        validity: int = 7776000,
        http_port: int | None = None,
        dns_server: str | None = None,
        **extra: str,
    ) -> Container:
        """Pebble with its mock DNS (every name is 127.0.0.1), or, with `dns_server`
        (`127.0.0.1:PORT`, e.g. `dns.start_dns(stack).address`), resolving through that server
        only: dns-01 TXT records and the addresses http-01 dials."""
        self.ca_dir.mkdir(parents=True, exist_ok=True)
        if dns_server:
            extra = {"PEBBLE_DNS_SERVER": dns_server, **extra}
        p = self.ports
        host, where = self.place("pebble")
        env = {
            "PEBBLE_LISTEN": f"{host}:{p[0]}",
            "PEBBLE_MANAGEMENT": f"{host}:{p[1]}",
            "PEBBLE_DNS": f"{host}:{p[2]}",
            "PEBBLE_CHALLTEST_MANAGEMENT": f"{host}:{p[3]}",
            "PEBBLE_HTTP_PORT": str(http_port or self.http_port),
            "PEBBLE_VALIDITY_SECONDS": str(validity),
            **extra,
        }
        pebble = self._run(
            PEBBLE_IMAGE,
            "pebble",
            environment=env,
            volumes={str(self.ca_dir): {"bind": "/pebble-ca", "mode": "rw"}},
            **where,
            **self.pebble_options,
        )
        wait_for("Pebble to answer", lambda: self._pebble_ready(pebble), timeout=60)
        return pebble

    pebble_options: ClassVar[dict[str, object]] = {}  # more run options for Pebble's container

    def _pebble_ready(self, pebble: Container) -> bool:
        return _healthy(pebble)

    def start_app(
        self,
        *,
        init: bool = True,
        publish_http: bool = True,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        stop_timeout: int | None = None,
    ) -> Container:
        self.le_dir.mkdir(parents=True, exist_ok=True)
        ports = {"443/tcp": ("127.0.0.1", self.https_port)}
        if publish_http:
            ports["80/tcp"] = ("127.0.0.1", self.http_port)
        return self._run(
            APP_IMAGE,
            "app",
            environment={"CERT_NAME": self.domain, **(env or {})},
            labels={"certbot-sidecar.test": self.uid},
            ports=ports,
            volumes={str(self.le_dir): {"bind": "/etc/letsencrypt", "mode": "ro"}},
            init=init,
            command=command,
            **({"stop_timeout": stop_timeout} if stop_timeout is not None else {}),
        )

    def sidecar_env(self, **overrides: str) -> dict[str, str]:
        env = {
            "DOMAINS": self.domain,
            "ACME_SERVER": self.acme_url,
            "ACME_CA_BUNDLE": "/pebble-ca/ca.pem",
            "APP_LABEL": self.app_label,
            "HTTP01_PORT": str(self.http_port),
            "HTTP01_ADDRESS": "127.0.0.1",
            "LOG_LEVEL": "DEBUG",
            # the test names live in Pebble's mock DNS only (test_preflight turns the check on)
            "CHECK_NAMES": "false",
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def forget_authorizations(self) -> None:
        """Before a sidecar run: no valid authorization left for Pebble to reuse at random."""
        if not self.keep_authorizations:
            forget_authorizations(self.le_dir, self.acme_url, self.ca_dir / "ca.pem")

    def start_guard(self, env: dict[str, str]) -> Path:
        """`sidecar guard` (the sidecar's image) with the targets of the sidecar environment
        `env`, the engine's socket, and a directory of this world for its socket; that
        directory (mount it at GUARD_DIR and set DOCKER_HOST=GUARDED_HOST). A running guard of
        this world for the same targets is reused."""
        targets = {k: v for k, v in env.items() if k in TARGET_VARIABLES}
        key = tuple(sorted(targets.items()))
        if key in self.guard_dirs:
            running, where = self.guard_dirs[key]
            running.reload()
            if running.status == "running" and (where / "docker.sock").is_socket():
                return where
        where = self.tmp / f"guard-{len(self.containers)}"
        where.mkdir(parents=True)
        guard = self._run(
            SIDECAR_IMAGE,
            f"guard-{len(self.containers)}",
            command=["guard"],
            environment=targets,
            network_mode="none",
            volumes={SOCKET: {"bind": SOCKET, "mode": "rw"}, str(where): {"bind": GUARD_DIR}},
        )
        self.guards.append(guard)
        wait_for("the guard's socket", (where / "docker.sock").is_socket, timeout=30)
        self.guard_dirs[key] = (guard, where)
        return where

    def refusals(self) -> list[str]:
        """Every call the guards of this world refused (their log lines)."""
        lines = (g.logs().decode(errors="replace").splitlines() for g in self.guards)
        if self.refusing:
            return []
        return [line for logged in lines for line in logged if ": refused " in line]

    def engine_access(
        self, socket: bool, guard: bool | None, env: dict[str, str]
    ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """The mounts and environment that give a sidecar the engine: its socket, or the
        socket of a guard started for it (`guard`, by default `guarded`); none without `socket`."""
        if not socket:
            return {}, {}
        if guard if guard is not None else self.guarded:
            where = self.start_guard(self.sidecar_env(**env))
            return {str(where): {"bind": GUARD_DIR, "mode": "rw"}}, {"DOCKER_HOST": GUARDED_HOST}
        return {SOCKET: {"bind": SOCKET, "mode": "rw"}}, {}

    def sidecar(
        self,
        *command: str,
        socket: bool = True,
        guard: bool | None = None,
        volume_mode: str = "rw",
        labels: dict[str, str] | None = None,
        **env: str,
    ) -> Container:
        """Start the sidecar image (host network, the volume, the Docker socket, or with `guard`
        the socket of a guard in front of it)."""
        self.le_dir.mkdir(parents=True, exist_ok=True)
        self.forget_authorizations()
        volumes = {
            str(self.le_dir): {"bind": "/etc/letsencrypt", "mode": volume_mode},
            str(self.ca_dir): {"bind": "/pebble-ca", "mode": "ro"},
            **self.sidecar_volumes,
        }
        mounts, access = self.engine_access(socket, guard, env)
        volumes.update(mounts)
        env = {**access, **env}
        return self._run(
            SIDECAR_IMAGE,
            f"sidecar-{len(self.containers)}",
            command=list(command) or None,
            network_mode="host",
            environment=self.sidecar_env(**env),
            volumes=volumes,
            labels=labels or {},
        )

    def sidecar_once(self, *command: str, timeout: float = 300, **options: Any) -> tuple[int, str]:
        """Run a one-shot sidecar command; its exit code and its logs."""
        container = self.sidecar(*command, **options)
        code = container.wait(timeout=timeout)["StatusCode"]
        return code, container.logs().decode(errors="replace")

    def state(self, container: Container) -> dict[str, object]:
        container.reload()
        return container.attrs["State"]  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)


def _healthy(container: Container) -> bool:
    container.reload()
    state = container.attrs["State"]
    if not state["Running"]:
        logs = container.logs().decode(errors="replace")[-2000:]
        raise AssertionError(f"{container.name} exited: {logs}")
    return bool(state.get("Health", {}).get("Status") == "healthy")
