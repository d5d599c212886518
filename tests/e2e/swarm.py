"""A real single-node Docker Swarm for e2e tests: the swarm itself, and SwarmStack.

`single_node_swarm(client)` joins nothing: it uses the engine's swarm when the engine is already a
manager, or initialises one (`docker swarm init --advertise-addr 127.0.0.1`, control port on
loopback) and leaves it afterwards, only then. Plain containers of other tests keep working while
it is active (the swarm adds the `ingress` and `docker_gwbridge` networks, nothing else).

`SwarmStack` mirrors `harness.Stack` (it is one: Pebble and other plain containers come from
there): the app as a service publishing host-mode ports (they answer on 127.0.0.1; the ingress
routing mesh does not, here), the sidecar as a one-replica service on a manager with the Docker
socket and the host network, `docker stack deploy` of config/stack.yaml, and the full-spec service
updates that scale and force without changing anything else in the spec (what a person does by
hand). Services run the images by ID (`sha256:...`): with a tag, every task start first tries to
pull from the registry.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker import types

from tests.e2e.harness import (
    APP_IMAGE,
    E2E_LABEL,
    ROOT,
    SESSION,
    SESSION_LABEL,
    SIDECAR_IMAGE,
    TAG,
    Stack,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


GWBRIDGE = "docker_gwbridge"
# A task whose container may run: every state before a terminal one.
LIVE_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
)
TERMINAL_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "remove", "orphaned"})
LINEAGE_LABEL = "certbot-sidecar.lineage"  # on the sidecar's secrets: lineage, part, serial
PART_LABEL = "certbot-sidecar.part"
SERIAL_LABEL = "certbot-sidecar.serial"
STACK_FILE = ROOT / "config" / "stack.yaml"
STACK_LABEL = "com.docker.stack.namespace"
RECORD = ("sidecar", "stopped.json")  # the sidecar's record of what it stopped, in the tree


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


def remove_stack(api: docker.APIClient, stack: str, cli: tuple[str, ...] = ("docker",)) -> None:
    """`docker stack rm` (through `cli`: the docker CLI of that engine), then the stack's volumes
    once its containers are gone."""
    subprocess.run([*cli, "stack", "rm", stack], check=False, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and api.containers(
        all=True, filters={"label": f"{STACK_LABEL}={stack}"}
    ):
        time.sleep(0.2)
    for volume in api.volumes(filters={"label": f"{STACK_LABEL}={stack}"}).get("Volumes") or []:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_volume(volume["Name"])


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
    stacks: list[str] = field(default_factory=list)

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def labels(self, **extra: str) -> dict[str, str]:
        return {E2E_LABEL: self.uid, SESSION_LABEL: SESSION, **extra}

    @property
    def cli(self) -> tuple[str, ...]:
        """The docker CLI of the engine that manages the swarm."""
        return ("docker",)

    def image_id(self, tag: str) -> str:
        return self.api.inspect_image(tag)["Id"]  # type: ignore[no-any-return]

    def _service(self, name: str, template: types.TaskTemplate, **options: Any) -> str:
        labels = self.labels(**options.pop("labels", {}))
        sid: str = self.api.create_service(
            template, name=f"cbs-{name}-{self.uid}", labels=labels, **options
        )["ID"]
        self.services.append(sid)
        return sid

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
        placement: types.Placement | None = None,
    ) -> str:
        """The demo app as a service, ports published in host mode (0.0.0.0:PORT on the node).

        With `secrets` (a list, empty for none yet: the sidecar adds them with
        CERT_DELIVERY=secret) it reads the certificate from /run/secrets; else from the lineage
        directory bind-mounted read-only (the node the volume is on).
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
            types.TaskTemplate(container_spec=container, placement=placement),
            labels={"certbot-sidecar.test": self.uid},  # a service label: the future selector
            mode=types.ServiceMode(mode, replicas=replicas if mode == "replicated" else None),
            endpoint_spec=types.EndpointSpec(
                ports={published: (target, "tcp", "host") for published, target in ports.items()}
            ),
        )

    def sidecar_service(
        self,
        *command: str,
        restart: str = "any",
        socket: bool = True,
        guard: bool | None = None,
        node: str = "node.role == manager",
        **env: str,
    ) -> str:
        """The sidecar as a one-replica service on a manager (`node`: its placement constraint):
        host network, volume, socket (without it: DOCKER_HOST, e.g. a socket proxy; with
        `guard`, by default `guarded`, a guard's socket, the guard a container on this node)."""
        self.le_dir.mkdir(parents=True, exist_ok=True)
        self.forget_authorizations()
        mounts = [
            types.Mount("/etc/letsencrypt", str(self.le_dir), type="bind"),
            types.Mount("/pebble-ca", str(self.ca_dir), type="bind", read_only=True),
            *(
                types.Mount(m["bind"], source, type="bind", read_only=m.get("mode") == "ro")
                for source, m in self.sidecar_volumes.items()
            ),
        ]
        access, extra = self.engine_access(socket, guard, env)
        mounts += [types.Mount(m["bind"], source, type="bind") for source, m in access.items()]
        env = {**extra, **env}
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
            placement=types.Placement(constraints=[node]),
            networks=[{"Target": "host"}],
        )
        return self._service(f"sidecar-{len(self.services)}", template)

    def sidecar_service_once(
        self,
        *command: str,
        timeout: float = 300,
        socket: bool = True,
        guard: bool | None = None,
        **env: str,
    ) -> tuple[int, str]:
        """Run one sidecar command as a swarm task (restart: none); its exit code and logs."""
        sid = self.sidecar_service(*command, restart="none", socket=socket, guard=guard, **env)
        return self.outcome(sid, timeout)

    def outcome(self, service: str, timeout: float = 300) -> tuple[int, str]:
        """The exit code and logs of a one-shot service's task, once it has ended."""
        done: list[dict[str, Any]] = []

        def finished() -> bool:
            done[:] = [
                t
                for t in self.api.tasks(filters={"service": service})
                if t["Status"]["State"] in TERMINAL_STATES
            ]
            return bool(done)

        poll("the sidecar task to finish", finished, timeout)
        status = done[0]["Status"]
        code = status.get("ContainerStatus", {}).get("ExitCode", -1)
        err = f"\n[task: {status.get('Err')}]" if status.get("Err") else ""
        return int(code), self.logs(service) + err

    def logs(self, service: str) -> str:
        """Everything the service's tasks wrote (the sidecar logs to stderr), oldest task first.
        Read from the task containers: swarm shows no service logs of a task still `starting`
        (the sidecar's healthcheck has not passed once in its first minute)."""
        tasks = sorted(self.api.tasks(filters={"service": service}), key=lambda t: t["CreatedAt"])
        out = []
        for task in tasks:
            container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
            with contextlib.suppress(docker.errors.NotFound):
                if container:
                    out.append(self.api.logs(container, stdout=True, stderr=True))
        return b"".join(out).decode(errors="replace")

    def task_container(self, service: str) -> str:
        """The container of the service's one task that is meant to run and has started."""
        (task,) = [
            t
            for t in self.api.tasks(filters={"service": service, "desired-state": "running"})
            if t["Status"]["State"] in {"starting", "running"}
        ]
        return str(task["Status"]["ContainerStatus"]["ContainerID"])

    def deploy(self, name: str, **env: str) -> str:
        """`docker stack deploy` of config/stack.yaml as stack NAME+UID with this session's
        images; the stack's name. Removed by `cleanup()` (services, then volumes)."""
        stack = f"{name}{self.uid}"
        self.stacks.append(stack)
        deploy = ["stack", "deploy", "--resolve-image", "never", "-c", str(STACK_FILE), stack]
        subprocess.run(
            [*self.cli, *deploy],
            check=True,
            capture_output=True,
            env={**os.environ, "IMAGE_TAG": TAG, **env},
        )
        return stack

    def stack_service(self, stack: str, service: str) -> str:
        """The id of a stack's service (named STACK_SERVICE)."""
        return str(self.api.inspect_service(f"{stack}_{service}")["ID"])

    def lineage_secrets(self) -> list[dict[str, Any]]:
        """The secrets the sidecar made for this world's lineage."""
        return self.api.secrets(filters={"label": f"{LINEAGE_LABEL}={self.domain}"})  # type: ignore[no-any-return]

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

    def cleanup(self) -> None:
        for stack in self.stacks:
            remove_stack(self.api, stack, self.cli)
        remove_labelled(self.api, f"{E2E_LABEL}={self.uid}")
        for secret in self.api.secrets(filters={"label": LINEAGE_LABEL}):  # the sidecar's
            if self.uid in secret["Spec"]["Labels"][LINEAGE_LABEL]:  # every lineage of the test
                with contextlib.suppress(docker.errors.NotFound):
                    self.api.remove_secret(secret["ID"])
        super().cleanup()


def renew(stack: SwarmStack, *flags: str, socket: bool = True, **env: str) -> str:
    """`sidecar renew` as a one-shot swarm task on a manager; its logs (it must succeed)."""
    code, logs = stack.sidecar_service_once("renew", *flags, socket=socket, **env)
    assert code == 0, logs
    return logs


def referenced(stack: SwarmStack, service: str) -> dict[str, str]:
    """The service's secrets: file name -> secret id."""
    spec = stack.api.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
    return {r["File"]["Name"]: r["SecretID"] for r in spec.get("Secrets") or []}


def replicas(stack: SwarmStack, service: str) -> int:
    """A replicated service's count in its spec."""
    return int(stack.api.inspect_service(service)["Spec"]["Mode"]["Replicated"]["Replicas"])


def recorded(stack: SwarmStack) -> bool:
    """The sidecar's record of what it stopped is on the volume."""
    return stack.le_dir.joinpath(*RECORD).exists()


def recorded_at_zero(stack: SwarmStack, service: str) -> bool:
    """The sidecar scaled it to 0 for the challenge (its record on the volume) and no task runs."""
    return recorded(stack) and replicas(stack, service) == 0 and not live_tasks(stack.api, service)


def versions(stack: SwarmStack) -> dict[str, dict[str, str]]:
    """The sidecar's secrets of the lineage: id -> labels."""
    return {s["ID"]: s["Spec"]["Labels"] for s in stack.lineage_secrets()}


def _bump_force_update(spec: dict[str, Any]) -> None:
    template = spec["TaskTemplate"]
    template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
