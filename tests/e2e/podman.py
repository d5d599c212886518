"""Podman as the engine for e2e tests: its Docker-compatible API as a process the tests own.

`PodmanService` runs rootful `podman system service --time=0 unix://SOCKET` as a child process
(stopped in `close()`), loads the images Docker built (`docker save | podman load`) and hands out
a docker-py client on that socket. `PodmanStack` is `harness.Stack` on it: its own Pebble, app and
sidecar as Podman containers, the sidecar pointed at the Podman socket with DOCKER_HOST. Podman
and Docker run side by side: containers here carry the same session label and are removed by the
stack and again by the service.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import urllib.request
from typing import TYPE_CHECKING, Any, ClassVar

import docker
import docker.errors
from docker.types import Ulimit

from tests.e2e.harness import (
    APP_IMAGE,
    PEBBLE_IMAGE,
    SESSION,
    SESSION_LABEL,
    SIDECAR_IMAGE,
    Stack,
    wait_for,
)

if TYPE_CHECKING:
    from pathlib import Path

    from docker.models.containers import Container

IMAGES = (SIDECAR_IMAGE, PEBBLE_IMAGE, APP_IMAGE)
IN_CONTAINER_SOCKET = "/run/podman/podman.sock"  # where the sidecar sees the Podman API
# This machine: Podman's rootful defaults (nofile 1048576, nproc 4194304) exceed the hard limits
# root may set here (no CAP_SYS_RESOURCE), and runc refuses to start. Test bed only.
ULIMITS = [
    Ulimit(name="nofile", soft=20000, hard=20000),
    Ulimit(name="nproc", soft=32768, hard=32768),
]
NO_HEALTHCHECK = {"test": ["NONE"]}  # Podman runs healthchecks only with systemd timers


class PodmanService:
    """`podman system service` on a socket in `tmp`, a child process of the tests."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.socket = tmp / "podman.sock"
        self.log = tmp / "service.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: docker.DockerClient | None = None
        self.loaded: list[str] = []

    def start(self, timeout: float = 60) -> docker.DockerClient:
        if shutil.which("podman") is None:
            raise AssertionError("podman is not installed: run tests/prepare.sh")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest does not kill it before teardown
            )
        wait_for(f"the Podman API on {self.socket}", self._alive, timeout)
        client = docker.DockerClient(base_url=f"unix://{self.socket}", version="auto", timeout=300)
        client.ping()
        self.client = client
        return client

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"podman system service exited: {self.tail()}")
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(self.socket))  # OSError until it listens: wait_for tries again
        return True

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def load_images(self, images: tuple[str, ...] = IMAGES) -> None:
        """`docker save IMAGES | podman load`: the images Docker built, in Podman's store."""
        with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as save:
            loaded = subprocess.run(
                ["podman", "load", "--quiet"],
                stdin=save.stdout,
                capture_output=True,
                check=False,
            )
            assert save.stdout is not None
            save.stdout.close()
        if save.returncode or loaded.returncode:
            raise AssertionError(f"docker save | podman load failed: {loaded.stderr.decode()}")
        self.loaded = list(images)

    def remove_session_containers(self) -> None:
        if self.client is None:
            return
        mine = f"{SESSION_LABEL}={SESSION}"
        for container in self.client.containers.list(all=True, filters={"label": mine}):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)

    def close(self) -> None:
        """Remove this session's containers and images, then stop the API process."""
        try:
            self.remove_session_containers()
            if self.loaded:
                subprocess.run(
                    ["podman", "rmi", "--ignore", *self.loaded], capture_output=True, check=False
                )
                self.loaded = []
        finally:
            if self.client is not None:
                self.client.close()
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.socket.unlink(missing_ok=True)


class PodmanStack(Stack):
    """`Stack` against the Podman API: same API, same names, so the tests read the same."""

    def __init__(self, service: PodmanService, tmp: Path) -> None:
        assert service.client is not None
        super().__init__(service.client, tmp)
        self.service = service

        self._app_extra: dict[str, object] = {}

    def _run(self, image: str, name: str, **kwargs: object) -> Container:
        kwargs = {"ulimits": ULIMITS, **self._app_extra, **kwargs}
        return super()._run(image, name, **kwargs)

    def start_app(
        self, *, healthcheck: dict[str, object] | None = None, **options: Any
    ) -> Container:
        """Stack's app; `healthcheck` (docker-py's format) gives it one."""
        self._app_extra = {"healthcheck": healthcheck} if healthcheck else {}
        try:
            return super().start_app(**options)
        finally:
            self._app_extra = {}

    # no healthcheck here: ready when its directory answers
    pebble_options: ClassVar[dict[str, object]] = {"healthcheck": NO_HEALTHCHECK}

    def _pebble_ready(self, pebble: Container) -> bool:
        pebble.reload()
        if not pebble.attrs["State"]["Running"]:
            logs = pebble.logs().decode(errors="replace")[-2000:]
            raise AssertionError(f"{pebble.name} exited: {logs}")
        ca = self.ca_dir / "ca.pem"
        if not ca.exists():
            return False
        ctx = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(self.acme_url, context=ctx, timeout=3) as reply:
            return b"newAccount" in reply.read()

    def sidecar_env(self, **overrides: str) -> dict[str, str]:
        """Stack's, with a START_TIMEOUT so that a start that never ends fails in 30 s."""
        return super().sidecar_env(**{"START_TIMEOUT": "30s", **overrides})

    def sidecar(
        self,
        *command: str,
        socket: bool = True,
        volume_mode: str = "rw",
        labels: dict[str, str] | None = None,
        **env: str,
    ) -> Container:
        """The sidecar image on the host network, DOCKER_HOST at the Podman socket."""
        self.le_dir.mkdir(parents=True, exist_ok=True)
        self.forget_authorizations()
        volumes: dict[str, dict[str, str]] = {
            str(self.le_dir): {"bind": "/etc/letsencrypt", "mode": volume_mode},
            str(self.ca_dir): {"bind": "/pebble-ca", "mode": "ro"},
        }
        if socket:
            volumes[str(self.service.socket)] = {"bind": IN_CONTAINER_SOCKET, "mode": "rw"}
            env = {"DOCKER_HOST": f"unix://{IN_CONTAINER_SOCKET}", **env}
        return self._run(
            SIDECAR_IMAGE,
            f"sidecar-{len(self.containers)}",
            command=list(command) or None,
            network_mode="host",
            environment=self.sidecar_env(**env),
            volumes=volumes,
            labels=labels or {},
        )

    def blocker(self, port: int) -> Container:
        """No target, and publishes 127.0.0.1:`port` (Podman's conmon holds it)."""
        return self._run(
            APP_IMAGE,
            "blocker",
            environment={"CERT_NAME": self.domain},
            ports={"80/tcp": ("127.0.0.1", port)},
            init=True,
        )
