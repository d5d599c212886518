"""The Docker Engine API for containers, and the one client funnel (`connect`, `call`,
`post_json`) that `targets.swarm` shares: the only module importing the Docker SDK."""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import docker
import docker.errors
import requests.exceptions
from loguru import logger

from sidecar.errors import DockerError, NotReadyError
from sidecar.targets.base import EPOCH
from sidecar.targets.container import ContainerTarget
from sidecar.targets.marks import TASK_SERVICE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from sidecar.shutdown import StopRequest
    from sidecar.targets.base import Target


Client = docker.DockerClient  # for the type hints of targets.swarm, which shares this funnel
API_TIMEOUT = 30.0
STOPPING_START_WAIT = 5.0  # while the sidecar stops: how long a started app may take to run
P = ParamSpec("P")
R = TypeVar("R")
# Docker: .../docker/containers/ID/...; Podman: .../overlay-containers/ID/userdata/... (or
# vfs-containers rootless). Layer directories (overlay/ID/diff) do not match.
_CONTAINER_ID = re.compile(r"/(?:docker/|[a-z]+-)?containers/([0-9a-f]{64})/")


def own_container_id(mountinfo: str) -> str | None:
    """The id of the container this process runs in (works with host networking too)."""
    match = _CONTAINER_ID.search(mountinfo)
    return match[1] if match else None


def parse_docker_time(raw: str) -> datetime:
    """Docker's RFC 3339 timestamps have nanoseconds; datetime takes microseconds."""
    if not raw or raw.startswith("0001-"):
        return EPOCH
    head, _, frac = raw.rstrip("Z").partition(".")
    micro = (frac[:6] or "0").ljust(6, "0")
    return datetime.fromisoformat(f"{head}.{micro}+00:00")


def _info(attrs: dict[str, Any], stop_timeout: float | None = None) -> ContainerTarget:
    """A target from inspect data; `stop_timeout` (STOP_TIMEOUT) overrides the container's."""
    state = attrs.get("State", {})
    config = attrs.get("Config") or {}
    own = config.get("StopTimeout") or None  # Podman says 0 where Docker leaves it out
    return ContainerTarget(
        id=attrs["Id"],
        name=attrs["Name"].lstrip("/"),
        labels=config.get("Labels") or {},
        running=bool(state.get("Running")),
        started_at=parse_docker_time(state.get("StartedAt", "")),
        finished_at=parse_docker_time(state.get("FinishedAt", "")),
        stop_timeout=float(stop_timeout if stop_timeout is not None else own or 10),
        auto_remove=bool((attrs.get("HostConfig") or {}).get("AutoRemove")),
    )


class DockerContainers:
    """Containers over the Docker Engine API (DOCKER_HOST, TLS and socket proxies work)."""

    kind = ContainerTarget

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        stop_timeout: float | None,
        start_timeout: float,
        stopping: StopRequest,
    ) -> None:
        self._client = client
        self._stop_timeout = stop_timeout
        self._start_timeout = start_timeout
        self._stopping = stopping

    def listed(
        self, names: Sequence[str] = (), label: str | None = None, own_id: str | None = None
    ) -> list[ContainerTarget]:
        """The candidates, running or not: the containers named (exactly), those carrying the
        label, and the sidecar's own. The engine filters (a host with hundreds of containers
        costs a few list calls), and only the candidates are inspected; the selection itself is
        `select.select_targets`."""
        found: dict[str, None] = {}
        for name in names:
            listed = self._list(f"list containers named {name}", {"name": name_pattern(name)})
            found.update(dict.fromkeys(c["Id"] for c in listed if _named(c, name)))
        if label:
            listed = self._list(f"list containers labelled {label}", {"label": label})
            found.update(dict.fromkeys(c["Id"] for c in listed))
        if own_id:
            found[own_id] = None
        return [x for x in (self.inspect(ident) for ident in found) if x is not None]

    def _list(self, what: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        return call(what, self._client.api.containers, all=True, filters=filters)

    def inspect(self, ident: str) -> ContainerTarget | None:
        try:
            attrs = call(f"inspect {ident[:12]}", self._client.api.inspect_container, ident)
            return _info(attrs, self._stop_timeout)
        except DockerError as error:
            if gone(error.__cause__):
                return None
            raise

    def stop(self, target: ContainerTarget) -> None:
        """Stop it, waiting as long as its own stop timeout allows (the API call waits too)."""
        began = time.monotonic()
        timeout = math.ceil(target.stop_timeout)
        call(f"stop {target.name}", self._client.api.stop, target.id, timeout=timeout)
        attrs = call(f"inspect {target.name}", self._client.api.inspect_container, target.id)
        took = time.monotonic() - began
        if attrs["State"].get("ExitCode") == 137:  # noqa: PLR2004
            logger.warning(
                "{} ignored its stop signal and was killed after {:.1f}s; add `init: true` to its "
                "compose service or handle SIGTERM in the app",
                target.name,
                took,
                container=target.name,
            )
        log_done("stop", target, took)

    def start(self, target: ContainerTarget) -> None:
        """Start it and wait until it is ready; NotReadyError when the engine started it but it
        did not become ready (the start itself is done: it is not started again)."""
        began = time.monotonic()
        call(f"start {target.name}", self._client.api.start, target.id)
        try:
            self._wait_ready(target)
        except NotReadyError:
            raise
        except DockerError as error:
            raise NotReadyError(str(error)) from error
        log_done("start", target, time.monotonic() - began)

    def restart(self, target: ContainerTarget) -> None:
        began = time.monotonic()
        timeout = math.ceil(target.stop_timeout)
        call(f"restart {target.name}", self._client.api.restart, target.id, timeout=timeout)
        self._wait_ready(target)
        log_done("restart", target, time.monotonic() - began)

    def signal(self, target: ContainerTarget, name: str) -> None:
        """Send a signal (e.g. SIGHUP: reload in place) to the container's main process."""
        call(f"signal {target.name}", self._client.api.kill, target.id, signal=name)
        logger.info("sent {} to {}", name, target.name, container=target.name)

    def deliver(self, targets: Sequence[ContainerTarget]) -> list[str]:
        """Containers read the certificates from the volume: nothing to bring them."""
        del targets
        return []

    def _wait_ready(self, target: ContainerTarget) -> None:
        """Until it runs (and is healthy, where it has a healthcheck), or DockerError. While the
        sidecar itself is stopping, running is enough: the exit must fit in its grace period."""
        began = time.monotonic()
        while True:
            state = call(f"inspect {target.name}", self._client.api.inspect_container, target.id)
            ready = readiness(state["State"])
            stopping = self._stopping.requested()
            limit = STOPPING_START_WAIT if stopping else self._start_timeout
            if ready == "ready" or (ready == "starting" and stopping):
                return
            if ready == "exited":
                raise DockerError(
                    f"{target.name} exited right after start "
                    f"(exit code {state['State'].get('ExitCode')}); see docker logs"
                )
            if time.monotonic() - began > limit:
                what = "running" if ready == "not running" else f"healthy ({ready})"
                raise DockerError(
                    f"{target.name} not {what} {limit:.0f}s after start (START_TIMEOUT)"
                    + never_checked(state["State"])
                )
            time.sleep(0.1)


def name_pattern(name: str) -> str:
    """The engine's name filter for exactly `name` (a regular expression in Docker and Podman,
    matched against `/name` in Docker's list and `name` in Podman's): container names allow
    `[a-zA-Z0-9_.-]`, of which only the dot means something in one."""
    return "^/?" + name.replace(".", "\\.") + "$"


def _named(listed: dict[str, Any], name: str) -> bool:
    return any(str(n).lstrip("/") == name for n in listed.get("Names") or [])


def never_checked(state: dict[str, Any]) -> str:
    """Why a healthcheck may never report: it has not run once (Podman without systemd)."""
    health = state.get("Health") or {}
    if health.get("Status") != "starting" or health.get("Log"):
        return ""
    return (
        "; its healthcheck has not run once: Podman runs healthchecks only through systemd "
        "timers (run its API service under systemd, or remove the healthcheck)"
    )


def readiness(state: dict[str, Any]) -> str:
    """`ready` (running, and healthy where it has a healthcheck), `starting` (running, health
    not yet known), `unhealthy`, `not running` (not yet), or `exited`. No healthcheck is a
    missing `Health` (Docker) or an empty `Status` in it (Podman)."""
    health = (state.get("Health") or {}).get("Status") or None
    if state.get("Running"):
        if health in (None, "healthy"):
            return "ready"
        return "unhealthy" if health == "unhealthy" else "starting"
    if state.get("Status") in ("exited", "dead"):
        return "exited"
    return "not running"


_PAST = {"stop": "stopped", "start": "started", "restart": "restarted"}


def log_done(event: str, target: Target, took: float, how: str = "") -> None:
    """One line per container or service operation, with stable fields for JSON logs
    (`container` or `service`: its name)."""
    logger.info(
        "{} {}{} in {:.2f}s",
        _PAST[event],
        target.title,
        how,
        took,
        event=event,
        duration=round(took, 3),
        **target.log_fields(),
    )


def gone(error: BaseException | None) -> bool:
    """The container does not exist (any more): Docker's 404, or Podman's 500 saying so."""
    if isinstance(error, docker.errors.NotFound):
        return True
    return isinstance(error, docker.errors.APIError) and "no such container" in str(error).lower()


def connect(timeout: float = API_TIMEOUT) -> docker.DockerClient:
    """A client from DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, checked with a ping.

    requests lets REQUESTS_CA_BUNDLE (set for certbot when ACME_CA_BUNDLE is given) override the
    CA of DOCKER_CERT_PATH, so the client is built without it and then ignores the environment.
    """
    try:
        with _without(*_CA_BUNDLE_VARS):
            client = docker.from_env(timeout=int(timeout))
        client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise DockerError(f"cannot reach the Docker engine: {_reason(error)}") from None
    return client


def publishers(port: int) -> list[str]:
    """Who holds host port `port`, if the engine knows: the running containers publishing it
    (read from each one's `Ports`: Podman rejects the `publish` filter), a swarm task as `service
    NAME (task CONTAINER)`."""
    running = call(f"list publishers of {port}", connect().api.containers)
    return [_publisher(c) for c in running if publishes(c, port)]


def _publisher(listed: dict[str, Any]) -> str:
    name = str(listed["Names"][0]).lstrip("/")
    service = (listed.get("Labels") or {}).get(TASK_SERVICE)
    return f"service {service} (task {name})" if service else f"container {name}"


def publishes(listed: dict[str, Any], port: int) -> bool:
    """Does a container (as the container list shows it) publish TCP host port `port`?"""
    return any(
        p.get("PublicPort") == port and p.get("Type", "tcp") == "tcp"
        for p in listed.get("Ports") or []
    )


_CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@contextlib.contextmanager
def _without(*names: str) -> Iterator[None]:
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _reason(error: Exception) -> str:
    text = str(error)
    if "Permission denied" in text:
        return "permission denied on the Docker socket (check the socket's group and mount)"
    if "No such file" in text or "FileNotFoundError" in text:
        return "no Docker socket (mount /var/run/docker.sock or set DOCKER_HOST)"
    return text.splitlines()[0][:300] if text else type(error).__name__


def status_of(error: DockerError) -> int | None:
    """The HTTP status the engine answered a failed call with (None: it did not answer)."""
    cause = error.__cause__
    return cause.status_code if isinstance(cause, docker.errors.APIError) else None


def call(what: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return fn(*args, **kwargs)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise DockerError(f"Docker: {what} failed: {_reason(error)}") from error


def post_json(api: Any, path: str, ident: str, data: object, params: dict[str, Any]) -> Any:  # noqa: ANN401 (docker-py's APIClient and its JSON)
    """POST `data` as JSON to the engine's `path` (`/services/{0}/update`, `ident` filled in),
    through docker-py's own request plumbing: its public methods rebuild a service's spec from
    their arguments (dropping or moving what they do not know). The one use of docker-py's
    private API (`_url`, `_post_json`, `_result`; tests/unit/targets/test_engine.py checks they
    are still there as used)."""
    url = api._url(path, ident)  # noqa: SLF001
    response = api._post_json(url, data=data, params=params)  # noqa: SLF001
    return api._result(response, json=True)  # noqa: SLF001


def self_id() -> str | None:
    """The sidecar's own container id, when it runs in one."""
    try:
        return own_container_id(Path("/proc/self/mountinfo").read_text(encoding="utf-8"))
    except OSError:
        return None
