"""A real three-node Docker Swarm for e2e tests: Docker Engines in containers of the outer engine.

    with multi_node_swarm(client, tmp) as bed:     # node1 the manager, node2 and node3 workers
        stack = MultiNodeStack(client, bed.shared / "x", bed=bed)
        stack.start_pebble()                       # on the bed's network; names -> node1
        app = stack.app_service(replicas=3, placement=SPREAD, secrets=[])
        stack.sidecar_service_once("renew", CERT_DELIVERY="secret")   # a task on node1
        stack.serial_on(bed.workers[0])            # what a node's published port 443 serves

Each node is a container of the node image (tests/e2e/node: Debian's engine, its storage on a
volume) started with the flags this machine needs (NODE_HOST_CONFIG: `--privileged` is refused
here), on one user-defined bridge network with fixed addresses; `swarm init` on node1, `swarm
join` on the others (`Bed.promote_all` makes three managers for a test, `Bed.reset` one again).
The engine inside answers the tests on a socket in a host directory (`Node.client`); the images
the e2e tests built are copied in once (`docker save`, `docker load`). Another host
directory is mounted at the same path in every node (`Bed.shared`): the tests' trees live there,
so a bind mount in a service on any node is a directory the tests read, like a volume every node
reaches (NFS). Pebble and the DNS bed run on the outer engine, on the same network
(`MultiNodeStack.place`), so every node reaches them by address and the tests reach every node's
published ports by its address. The outer engine's own swarm is never touched. Everything made
here carries the session's label and is removed at the end.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker import types

from tests.e2e.harness import (
    APP_IMAGE,
    E2E_LABEL,
    PEBBLE_IMAGE,
    ROOT,
    SESSION,
    SESSION_LABEL,
    SIDECAR_IMAGE,
    TAG,
    base_image,
    served_serial,
    wait_for,
)
from tests.e2e.swarm import SwarmStack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from docker.models.containers import Container

NODE_IMAGE = f"certbot-sidecar/node:{TAG}"
NODE_COUNT = 3
NODE_HOST = 10  # node N has host address 10 + N in the bed's subnet, helper containers 100 on
HELPER_HOST = 100
IN_NODE_API = "/outer"  # in a node: the directory of its API socket for the tests
IMAGES = (SIDECAR_IMAGE, APP_IMAGE, PEBBLE_IMAGE)  # every node runs the sidecar, app and stack
# What a Docker Engine in a container needs on this machine: every capability but
# CAP_SYS_RESOURCE (the sandbox lacks it, so `--privileged` is refused), no seccomp or AppArmor
# profile, nothing of /proc and /sys masked or read-only (the CLI's `systempaths=unconfined`;
# else every task fails to start), every device, the host's cgroups (v1) writable; and IPv6
# allowed on an IPv4-only interface (else no task starts either).
NODE_HOST_CONFIG: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}
UNMASKED = {"MaskedPaths": [], "ReadonlyPaths": []}  # not in docker-py's HostConfig
NODE_ENV = {"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"}
SPREAD = types.Placement(preferences=[types.PlacementPreference("spread", "node.id")])
UP = "ready"
RUNNING = frozenset({"running"})
STARTED = frozenset({"starting", "running"})  # the sidecar's task starts until it is healthy


@dataclass
class Node:
    """One engine of the bed: its container on the outer engine and its own API."""

    name: str  # hostname, as `docker node ls` shows it: node1, node2, node3
    container: Container
    ip: str
    socket: Path  # its API, on the host
    node_id: str = ""  # in the swarm, once joined (asked once: a paused node answers nothing)
    _client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=f"unix://{self.socket}", timeout=120)
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @property
    def cli(self) -> tuple[str, ...]:
        """The docker CLI pointed at this engine."""
        return ("docker", "-H", f"unix://{self.socket}")

    def answers(self) -> bool:
        try:
            return bool(self.api.ping())
        except (docker.errors.DockerException, OSError):
            return False

    def pause(self) -> None:
        """Its engine frozen: the swarm hears nothing more from the node (down after about
        15 s), as when a machine hangs or its network goes."""
        self.container.pause()

    def unpause(self) -> None:
        self.container.unpause()

    def start(self) -> None:
        """Start its container again (after a kill: the engine, its swarm state kept)."""
        self.container.start()
        wait_for(f"{self.name}'s engine", self.answers, timeout=60)


@dataclass
class Bed:
    """Three engines in one swarm, node1 its manager (and leader)."""

    outer: docker.DockerClient
    network: str
    subnet: ipaddress.IPv4Network
    nodes: tuple[Node, ...]
    shared: Path  # a host directory at the same path in every node
    _helpers: Iterator[int] = field(default_factory=lambda: itertools.count(HELPER_HOST))

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> tuple[Node, ...]:
        return self.nodes[1:]

    @property
    def gateway(self) -> str:
        """The outer host's address on the bed's network (the tests' own listeners)."""
        return str(self.subnet[1])

    def address(self) -> str:
        """A free address on the network, for a helper container."""
        return str(self.subnet[next(self._helpers)])

    def run_options(self, ip: str) -> dict[str, Any]:
        """Run options putting an outer container on the bed's network at `ip`."""
        endpoint = self.outer.api.create_endpoint_config(ipv4_address=ip)
        return {"network": self.network, "networking_config": {self.network: endpoint}}

    def states(self, via: Node | None = None) -> dict[str, tuple[str, str]]:
        """Each node's (status, manager role) as a manager sees it: `("ready", "leader")`."""
        listed = (via or self.manager).api.nodes()
        return {
            n["Description"]["Hostname"]: (
                n["Status"]["State"],
                "leader"
                if (n.get("ManagerStatus") or {}).get("Leader")
                else (n.get("ManagerStatus") or {}).get("Reachability", "worker"),
            )
            for n in listed
        }

    def wait_ready(self, via: Node | None = None, timeout: float = 120) -> None:
        """Until every node is ready as `via` (default: the manager) sees it."""

        def ready() -> bool:
            try:
                return all(state == UP for state, _ in self.states(via).values())
            except docker.errors.APIError:
                return False  # no leader yet

        wait_for("every node ready", ready, timeout=timeout, every=0.5)

    def set_role(self, node: Node, role: str, via: Node | None = None) -> None:
        """`docker node promote` (role manager) or `demote` (role worker), through `via`."""
        api = (via or self.manager).api
        ident = node.node_id
        spec = api.inspect_node(ident)
        api.update_node(ident, spec["Version"]["Index"], {**spec["Spec"], "Role": role})

    def promote_all(self) -> None:
        """Every node a manager (three managers: the swarm survives the loss of one)."""
        for node in self.workers:
            self.set_role(node, "manager")
        wait_for(
            "three reachable managers",
            lambda: all(role != "worker" for _, role in self.states().values()),
            timeout=60,
        )

    def reset(self, timeout: float = 180) -> None:
        """Back to the bed the tests expect: every node up, node1 the only manager and the
        leader; after a test that promoted nodes or lost one."""
        for node in self.nodes:
            node.container.reload()
            if node.container.status == "paused":
                node.unpause()
            elif node.container.status != "running":
                node.start()
        for node in self.workers:
            wait_for(f"{node.name} a worker again", lambda n=node: self._demoted(n), timeout, 2)
        wait_for(
            "node1 the leader",
            lambda: self.states()[self.manager.name][1] == "leader",
            timeout,
        )
        self.wait_ready(timeout=timeout)

    def _demoted(self, node: Node) -> bool:
        """Whether `node` is a worker; if not, asks for it (through node1, which stays a manager:
        a leader demoted answers its own request by closing the connection)."""
        if self.states()[node.name][1] == "worker":
            return True
        with contextlib.suppress(docker.errors.APIError):
            self.set_role(node, "worker")
        return False


def build_node_image(client: docker.DockerClient) -> None:
    client.images.build(
        path=str(ROOT / "tests" / "e2e" / "node"),
        tag=NODE_IMAGE,
        buildargs={"BASE_IMAGE": base_image()},
        rm=True,
        forcerm=True,
    )


def _network(client: docker.DockerClient, name: str, labels: dict[str, str]) -> Any:
    """A bridge network with a subnet we name (fixed addresses need one): the one the engine
    picks, taken again explicitly; tried again when another network took it meanwhile."""
    for _ in range(5):
        probe = client.networks.create(name, driver="bridge", labels=labels)
        probe.reload()
        config = probe.attrs["IPAM"]["Config"][0]
        probe.remove()
        pool = types.IPAMPool(subnet=config["Subnet"], gateway=config["Gateway"])
        with contextlib.suppress(docker.errors.APIError):
            return client.networks.create(
                name, driver="bridge", labels=labels, ipam=types.IPAMConfig(pool_configs=[pool])
            )
    raise AssertionError(f"no free subnet for the network {name}")


def _start_node(
    client: docker.DockerClient, index: int, network: Any, root: Path, shared: Path
) -> Node:
    subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
    ip = str(subnet[NODE_HOST + index])
    sockets = root / f"node{index}"
    sockets.mkdir(parents=True)
    api = client.api
    binds = {
        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
        str(sockets): {"bind": IN_NODE_API, "mode": "rw"},
        str(shared): {"bind": str(shared), "mode": "rw"},
    }
    host_config = api.create_host_config(binds=binds, **NODE_HOST_CONFIG) | UNMASKED
    created = api.create_container(
        NODE_IMAGE,
        command=["-H", "unix:///var/run/docker.sock", "-H", f"unix://{IN_NODE_API}/docker.sock"],
        name=f"cbs-node{index}-{SESSION}",
        hostname=f"node{index}",
        detach=True,
        labels={E2E_LABEL: "multinode", SESSION_LABEL: SESSION},
        environment=NODE_ENV,
        volumes=[b["bind"] for b in binds.values()],
        host_config=host_config,
        networking_config=api.create_networking_config(
            {network.name: api.create_endpoint_config(ipv4_address=ip)}
        ),
    )
    container = client.containers.get(created["Id"])
    container.start()
    node = Node(f"node{index}", container, ip, sockets / "docker.sock")
    wait_for(f"node{index}'s engine", node.answers, timeout=60)
    return node


def _join(nodes: list[Node]) -> None:
    manager = nodes[0]
    manager.api.init_swarm(advertise_addr=manager.ip, listen_addr=f"{manager.ip}:2377")
    token = manager.api.inspect_swarm()["JoinTokens"]["Worker"]
    for node in nodes[1:]:
        node.api.join_swarm([f"{manager.ip}:2377"], token, advertise_addr=node.ip)
    for node in nodes:
        node.node_id = str(node.api.info()["Swarm"]["NodeID"])


def _load_images(nodes: list[Node], archive: Path) -> None:
    """The e2e images into every node at once (one archive, shared layers once)."""
    subprocess.run(["docker", "save", "-o", str(archive), *IMAGES], check=True)
    errors: list[BaseException] = []

    def load(node: Node) -> None:
        try:
            with archive.open("rb") as data:
                for _ in node.api.load_image(data):
                    pass
        except BaseException as error:  # noqa: BLE001 (reported by the caller's thread)
            errors.append(error)

    threads = [threading.Thread(target=load, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    archive.unlink()
    if errors:
        raise errors[0]


def _clear(node: Node) -> None:
    """Best effort: the task containers of a node gone before the node (they hold cgroups and
    mounts on the outer host)."""
    with contextlib.suppress(docker.errors.DockerException, OSError):
        node.container.reload()
        if node.container.status == "paused":
            node.unpause()
        if node.container.status in {"running", "paused"}:
            with contextlib.suppress(docker.errors.APIError):
                node.api.leave_swarm(force=True)
            for container in node.client.containers.list(all=True):
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True, v=True)


@contextlib.contextmanager
def multi_node_swarm(client: docker.DockerClient, root: Path) -> Iterator[Bed]:
    """A three-node swarm (node1 manager, node2 and node3 workers) for the duration; `root` a
    host directory of this session. Removed afterwards, whatever happened."""
    began = time.monotonic()
    build_node_image(client)
    labels = {E2E_LABEL: "multinode", SESSION_LABEL: SESSION}
    network = _network(client, f"cbs-nodes-{SESSION}", labels)
    shared = root / "shared"
    shared.mkdir(parents=True)
    nodes: list[Node] = []
    try:
        nodes.extend(
            _start_node(client, index, network, root / "api", shared)
            for index in range(1, NODE_COUNT + 1)
        )
        _join(nodes)
        _load_images(nodes, root / "images.tar")
        subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
        assert isinstance(subnet, ipaddress.IPv4Network)
        bed = Bed(client, network.name, subnet, tuple(nodes), shared)
        bed.wait_ready()
        print(f"multi-node bed ready in {time.monotonic() - began:.1f}s")
        yield bed
    finally:
        for node in nodes:
            _clear(node)
            with contextlib.suppress(docker.errors.NotFound):
                node.container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


@dataclass
class MultiNodeStack(SwarmStack):
    """SwarmStack on the bed: services through a manager's API (`via`, node1 unless a test moved
    it), Pebble and the DNS bed on the bed's network, the app's ports 80 and 443 on every node.

    Pebble's mock DNS answers every name with the manager's address (`resolve_to` changes it):
    HTTP-01 reaches the sidecar's node. The tree (`le_dir`) must be under `bed.shared`.
    """

    bed: Bed | None = None
    via: Node | None = None
    guarded: bool = False  # the harness's guard is a container of the host's engine, not a node's
    addresses: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> Bed:
        assert self.bed is not None
        return self.bed

    @property
    def api(self) -> docker.APIClient:
        return (self.via or self.nodes.manager).api

    @property
    def cli(self) -> tuple[str, ...]:
        return (self.via or self.nodes.manager).cli

    @property
    def http_port(self) -> int:
        return 80  # every node has its own ports

    @property
    def https_port(self) -> int:
        return 443

    @property
    def acme_url(self) -> str:
        return f"https://{self.place('pebble')[0]}:{self.ports[0]}/dir"

    def place(self, name: str) -> tuple[str, dict[str, Any]]:
        ip = self.addresses.setdefault(name, self.nodes.address())
        return ip, self.nodes.run_options(ip)

    def start_pebble(
        self,
        validity: int = 7776000,
        http_port: int | None = None,
        dns_server: str | None = None,
        answer: str | None = None,
        **extra: str,
    ) -> Container:
        """Pebble on the bed's network (its certificate names its address); its mock DNS
        answers `answer` (default: the manager's address) for every name."""
        ip = self.place("pebble")[0]
        extra = {"PEBBLE_CERT_SANS": f"DNS:localhost,IP:{ip}", **extra}
        pebble = super().start_pebble(validity, http_port, dns_server, **extra)
        if dns_server is None:
            self.resolve_to(answer or self.nodes.manager.ip)
        return pebble

    def resolve_to(self, ip: str) -> None:
        """Every name resolves to `ip` for Pebble from now on (pebble-challtestsrv)."""
        url = f"http://{self.place('pebble')[0]}:{self.ports[3]}/set-default-ipv4"
        body = json.dumps({"ip": ip}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=10) as answer:
            assert answer.status == 200

    def sidecar_env(self, **overrides: str) -> dict[str, str]:
        """The challenge server on every address of its node: the CA dials the node's."""
        return super().sidecar_env(**{"HTTP01_ADDRESS": None, **overrides})  # type: ignore[arg-type]

    def serial_on(self, node: Node, port: int | None = None) -> int | None:
        """The serial a node's published port serves (None: no TLS answer)."""
        try:
            return served_serial(port or self.https_port, self.domain, node.ip)
        except OSError:
            return None

    def serves_everywhere(self, serial: int, port: int | None = None) -> bool:
        return all(self.serial_on(n, port) == serial for n in self.nodes.nodes)

    def task_nodes(self, service: str, states: frozenset[str] = RUNNING) -> list[str]:
        """The hostnames of the nodes the service's tasks are on (those meant to run and in one
        of `states`), sorted."""
        names = {n.node_id: n.name for n in self.nodes.nodes}
        return sorted(
            names.get(t["NodeID"], t["NodeID"])
            for t in self.api.tasks(filters={"service": service, "desired-state": "running"})
            if t["Status"]["State"] in states
        )
