"""A real single-node Docker Swarm for e2e tests: the swarm itself, and SwarmStack.

`single_node_swarm(client)` joins nothing: it uses the engine's swarm when the engine is already a
manager, or initialises one (`docker swarm init --advertise-addr 127.0.0.1`, control port on
loopback) and leaves it afterwards, only then. Plain containers of other tests keep working while
it is active (the swarm adds the `ingress` and `docker_gwbridge` networks, nothing else).

`SwarmStack` mirrors `harness.Stack` (it is one: Pebble and other plain containers come from
there): the app as a service publishing host-mode ports (they answer on 127.0.0.1; the ingress
routing mesh does not, here), the sidecar as a one-replica service on a manager with the Docker
socket and the host network, lineage secrets, and the full-spec service updates that scale, force
and swap secrets without changing anything else in the spec. Services run the images by ID
(`sha256:...`): with a tag, every task start first tries to pull from the registry.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker import types

from tests.e2e.harness import (
    APP_IMAGE,
    E2E_LABEL,
    SESSION,
    SESSION_LABEL,
    SIDECAR_IMAGE,
    SOCKET,
    Stack,
    disk_serial,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from docker.models.containers import Container

GWBRIDGE = "docker_gwbridge"
# A task whose container may run: every state before a terminal one.
LIVE_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
)
TERMINAL_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "remove", "orphaned"})
SECRET_PARTS = ("fullchain", "privkey")
LINEAGE_LABEL = "certbot-sidecar.lineage"  # on secrets: which lineage, part and serial they hold
PART_LABEL = "certbot-sidecar.part"
SERIAL_LABEL = "certbot-sidecar.serial"


@dataclass(frozen=True)
class Swarm:
    """The engine's swarm as the tests use it."""

    node_id: str
    initialised: bool  # by this test session: it leaves the swarm at the end


def swarm_state(api: docker.APIClient) -> dict[str, Any]:
    return api.info()["Swarm"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def single_node_swarm(client: docker.DockerClient) -> Iterator[Swarm]:
    """The engine as a swarm manager for the duration; left again only if we initialised it."""
    api = client.api
    state = swarm_state(api)
    initialised = False
    had_gwbridge = bool(api.networks(names=[GWBRIDGE]))
    if state["LocalNodeState"] == "inactive":
        api.init_swarm(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        initialised = True
        state = swarm_state(api)
    elif state["LocalNodeState"] != "active" or not state["ControlAvailable"]:
        raise AssertionError(f"the engine is in a swarm but not as an active manager: {state}")
    try:
        yield Swarm(node_id=state["NodeID"], initialised=initialised)
    finally:
        remove_labelled(api, f"{SESSION_LABEL}={SESSION}")
        if initialised:
            api.leave_swarm(force=True)
            if not had_gwbridge:  # created by `swarm init`; left behind by `swarm leave`
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_network(GWBRIDGE)


def remove_labelled(api: docker.APIClient, label: str) -> None:
    """Remove the services, then the secrets, that carry `label` (each waits for the other)."""
    services = api.services(filters={"label": label})
    for service in services:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_service(service["ID"])
    # A removed service's tasks stop asynchronously; its containers hold host ports until then.
    deadline = time.monotonic() + 60
    for service in services:
        while time.monotonic() < deadline and api.containers(
            all=True, filters={"label": f"com.docker.swarm.service.id={service['ID']}"}
        ):
            time.sleep(0.2)
    for secret in api.secrets(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_secret(secret["ID"])


def update_spec(
    api: docker.APIClient, service: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Apply `change` to the service's current spec and send ALL of it back; the spec sent.

    docker-py's update_service replaces the whole ServiceSpec: whatever is not passed is
    dropped (ports, labels, update config...). `fetch_current_spec=True` is no fix: it reads the
    spec with defaults inserted, and sending those back changes the task template, which
    restarts every task.
    """
    current = api.inspect_service(service)
    spec = copy.deepcopy(current["Spec"])
    change(spec)
    api.update_service(
        current["ID"],
        current["Version"][
            "Index"
        ],  # a concurrent change makes this fail: "update out of sequence"
        task_template=spec["TaskTemplate"],
        name=spec["Name"],
        labels=spec.get("Labels"),
        mode=spec["Mode"],
        update_config=spec.get("UpdateConfig"),
        rollback_config=spec.get("RollbackConfig"),
        endpoint_spec=spec.get("EndpointSpec"),
        networks=spec.get("Networks"),  # deprecated top-level field; None when unused
    )
    return spec


def live_tasks(api: docker.APIClient, service: str) -> list[dict[str, Any]]:
    """Tasks whose container may still run (not yet in a terminal state)."""
    return [
        t for t in api.tasks(filters={"service": service}) if t["Status"]["State"] in LIVE_STATES
    ]


def running_tasks(api: docker.APIClient, service: str) -> list[dict[str, Any]]:
    """Tasks that run and are meant to: State running implies healthy where there is a check."""
    return [
        t
        for t in api.tasks(filters={"service": service, "desired-state": "running"})
        if t["Status"]["State"] == "running"
    ]


def poll(what: str, check: Callable[[], object], timeout: float) -> float:
    """Seconds until `check()` is truthy (polled every 20 ms); AssertionError on timeout."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - began


def spec_diff(old: object, new: object, path: str = "") -> list[str]:
    """The leaves that differ between two specs, as `path: old -> new`."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            line
            for key in sorted(set(old) | set(new))
            for line in spec_diff(
                old.get(key, "<absent>"), new.get(key, "<absent>"), f"{path}.{key}"
            )
        ]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


@dataclass
class SwarmStack(Stack):
    """harness.Stack plus services and secrets, all labelled and removed by `cleanup()`."""

    swarm: Swarm | None = None
    services: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def labels(self, **extra: str) -> dict[str, str]:
        return {E2E_LABEL: self.uid, SESSION_LABEL: SESSION, **extra}

    def image_id(self, tag: str) -> str:
        return self.api.inspect_image(tag)["Id"]  # type: ignore[no-any-return]

    def _service(self, name: str, template: types.TaskTemplate, **options: Any) -> str:
        labels = self.labels(**options.pop("labels", {}))
        sid: str = self.api.create_service(
            template, name=f"cbs-{name}-{self.uid}", labels=labels, **options
        )["ID"]
        self.services.append(sid)
        return sid

    def start_placeholder(self) -> Container:
        """A plain container with the app label and no ports: what `renew` stops meanwhile.

        The sidecar of today controls containers only; it obtains the certificate for the
        services this way (with the challenge port free, as the app service is not there yet).
        """
        return self._run(
            APP_IMAGE,
            "placeholder",
            command=["sleep", "infinity"],
            labels={"certbot-sidecar.test": self.uid},
            init=True,
        )

    def app_service(
        self,
        *,
        mode: str = "replicated",
        replicas: int = 1,
        secrets: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        healthcheck: types.Healthcheck | None = None,
        publish_http: bool = True,
        ports: dict[int, int] | None = None,
        name: str = "app",
    ) -> str:
        """The demo app as a service, ports published in host mode (0.0.0.0:PORT on the node).

        With `secrets` (from `lineage_secrets`) it reads the certificate from /run/secrets
        (secret mode, every node); else from the lineage directory bind-mounted read-only (the
        node the volume is on).
        """
        environment = {"CERT_NAME": self.domain, **(env or {})}
        mounts = []
        if secrets is None:
            self.le_dir.mkdir(parents=True, exist_ok=True)
            mounts.append(
                types.Mount("/etc/letsencrypt", str(self.le_dir), type="bind", read_only=True)
            )
        else:
            environment["LE_DIR"] = "/run/secrets"
        container = types.ContainerSpec(
            image=self.image_id(APP_IMAGE),
            env=environment,
            mounts=mounts,
            secrets=secrets or None,
            healthcheck=healthcheck,
            init=True,  # SIGTERM reaches the app at once
            labels=self.labels(),  # the task containers: never the sidecar's APP_LABEL here
        )
        if ports is None:  # {published: target}; one task per node can hold a host-mode port
            ports = {self.https_port: 443}
            if publish_http:  # without it the challenge port stays free while the app runs
                ports[self.http_port] = 80
        return self._service(
            name,
            types.TaskTemplate(container_spec=container),
            labels={"certbot-sidecar.test": self.uid},  # a service label: the future selector
            mode=types.ServiceMode(mode, replicas=replicas if mode == "replicated" else None),
            endpoint_spec=types.EndpointSpec(
                ports={published: (target, "tcp", "host") for published, target in ports.items()}
            ),
        )

    def sidecar_service(self, *command: str, restart: str = "any", **env: str) -> str:
        """The sidecar as a one-replica service on a manager: host network, volume, socket."""
        self.le_dir.mkdir(parents=True, exist_ok=True)
        mounts = [
            types.Mount("/etc/letsencrypt", str(self.le_dir), type="bind"),
            types.Mount("/pebble-ca", str(self.ca_dir), type="bind", read_only=True),
            types.Mount(SOCKET, SOCKET, type="bind"),
        ]
        container = types.ContainerSpec(
            image=self.image_id(SIDECAR_IMAGE),
            args=list(command) or None,  # args = CMD; `command` would replace the entrypoint
            env=self.sidecar_env(**env),
            mounts=mounts,
            labels=self.labels(),
            stop_grace_period=60_000_000_000,
        )
        template = types.TaskTemplate(
            container_spec=container,
            restart_policy=types.RestartPolicy(condition=restart),
            placement=types.Placement(constraints=["node.role == manager"]),
            networks=[{"Target": "host"}],
        )
        return self._service(f"sidecar-{len(self.services)}", template)

    def sidecar_service_once(
        self, *command: str, timeout: float = 300, **env: str
    ) -> tuple[int, str]:
        """Run one sidecar command as a swarm task (restart: none); its exit code and logs."""
        sid = self.sidecar_service(*command, restart="none", **env)
        done: list[dict[str, Any]] = []

        def finished() -> bool:
            done[:] = [
                t
                for t in self.api.tasks(filters={"service": sid})
                if t["Status"]["State"] in TERMINAL_STATES
            ]
            return bool(done)

        poll("the sidecar task to finish", finished, timeout)
        status = done[0]["Status"]
        logs = b"".join(self.api.service_logs(sid, stdout=True, stderr=True)).decode(
            errors="replace"
        )
        code = status.get("ContainerStatus", {}).get("ExitCode", -1)
        return int(code), logs + (f"\n[task: {status.get('Err')}]" if status.get("Err") else "")

    def update(self, service: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        return update_spec(self.api, service, change)

    def scale(self, service: str, replicas: int, timeout: float = 120) -> float:
        """Scale a replicated service; seconds until no task runs (0) or `replicas` run."""
        self.update(service, lambda s: s["Mode"]["Replicated"].__setitem__("Replicas", replicas))
        if replicas == 0:
            return poll("no task to run", lambda: not live_tasks(self.api, service), timeout)
        return self.wait_running(service, replicas, timeout)

    def force_update(self, service: str) -> int:
        """`docker service update --force`: a rolling restart; the new ForceUpdate counter."""
        spec = self.update(service, _bump_force_update)
        return int(spec["TaskTemplate"]["ForceUpdate"])

    def wait_running(
        self, service: str, count: int, timeout: float = 120, force: int | None = None
    ) -> float:
        """Seconds until `count` tasks run (of the spec with ForceUpdate `force`, if given)."""

        def ready() -> bool:
            tasks = running_tasks(self.api, service)
            if force is not None:
                tasks = [t for t in tasks if t["Spec"].get("ForceUpdate", 0) == force]
            return len(tasks) >= count

        return poll(f"{count} running task(s)", ready, timeout)

    def lineage_secrets(self, name: str | None = None) -> list[dict[str, Any]]:
        """Versioned secrets (full chain, key) of the lineage's current files; their references."""
        lineage = name or self.domain
        serial = f"{disk_serial(self.le_dir, lineage):x}"
        refs = []
        for part in SECRET_PARTS:
            data = (self.le_dir / "live" / lineage / f"{part}.pem").read_bytes()
            # Names: at most 64 of [a-zA-Z0-9-_.]; the serial (up to 40 hex digits) is cut short.
            secret_name = f"{self.uid}-{part}-{serial[:16]}"
            labels = self.labels(**{LINEAGE_LABEL: lineage, PART_LABEL: part, SERIAL_LABEL: serial})
            sid = self.api.create_secret(secret_name, data, labels=labels)["ID"]
            self.secrets.append(sid)
            mode = 0o400 if part == "privkey" else 0o444
            refs.append(
                types.SecretReference(
                    sid,
                    secret_name,
                    filename=f"live/{lineage}/{part}.pem",
                    uid="0",
                    gid="0",
                    mode=mode,
                )
            )
        return refs

    def swap_secrets(self, service: str, refs: list[dict[str, Any]]) -> dict[str, Any]:
        """`--secret-rm` the old versions, `--secret-add` the new ones, in ONE update (a reload)."""
        targets = {r["File"]["Name"] for r in refs}

        def change(spec: dict[str, Any]) -> None:
            container = spec["TaskTemplate"]["ContainerSpec"]
            kept = [s for s in container.get("Secrets") or [] if s["File"]["Name"] not in targets]
            container["Secrets"] = kept + [dict(r) for r in refs]

        return self.update(service, change)

    def cleanup(self) -> None:
        remove_labelled(self.api, f"{E2E_LABEL}={self.uid}")
        super().cleanup()


def _bump_force_update(spec: dict[str, Any]) -> None:
    template = spec["TaskTemplate"]
    template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
