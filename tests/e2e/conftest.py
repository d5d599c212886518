from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from tests.e2e.harness import SESSION, SESSION_LABEL, Stack, build_images
from tests.e2e.multinode import Bed, MultiNodeStack, multi_node_swarm
from tests.e2e.swarm import Swarm, SwarmStack, single_node_swarm
from tests.receiver import Receiver

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    """The real Docker engine: e2e tests fail (never skip) when it cannot be reached."""
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(f"e2e tests need a Docker engine: {error}")
    build_images(client)
    yield client
    mine = f"{SESSION_LABEL}={SESSION}"
    for container in client.containers.list(all=True, filters={"label": mine}):
        container.remove(force=True, v=True)


@pytest.fixture
def stack(client: docker.DockerClient, tmp_path: Path) -> Iterator[Stack]:
    world = Stack(client, tmp_path)
    yield world
    refused = world.refusals()
    world.cleanup()
    assert not refused, refused  # through a guard, every call the sidecar made was allowed


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def swarm(client: docker.DockerClient) -> Iterator[Swarm]:
    """A single-node swarm for the tests asking for it; left at the end if this session made it."""
    with single_node_swarm(client) as engine_swarm:
        yield engine_swarm


@pytest.fixture
def swarm_stack(client: docker.DockerClient, swarm: Swarm, tmp_path: Path) -> Iterator[SwarmStack]:
    world = SwarmStack(client, tmp_path, swarm=swarm)
    yield world
    refused = world.refusals()
    world.cleanup()
    assert not refused, refused  # through a guard, every call the sidecar made was allowed


@pytest.fixture(scope="session")
def nodes(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """A three-node swarm of engines in containers (multinode.py): made once, for every test
    asking for it, and removed at the end."""
    with multi_node_swarm(client, tmp_path_factory.mktemp("multinode")) as bed:
        yield bed


@pytest.fixture
def node_stack(client: docker.DockerClient, nodes: Bed) -> Iterator[MultiNodeStack]:
    """A world on the three-node swarm; its tree in the directory every node mounts."""
    world = MultiNodeStack(client, Path(tempfile.mkdtemp(dir=nodes.shared)), bed=nodes)
    yield world
    world.cleanup()
