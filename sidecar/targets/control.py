"""The app's targets as the settings name them: containers and, in a swarm, services, behind one
TargetControl (one selection; each operation goes to the backend of the target's type)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from sidecar.targets.engine import DockerContainers, connect, self_id
from sidecar.targets.marks import SERVICE_ID
from sidecar.targets.secret_store import secret_store
from sidecar.targets.select import select_targets
from sidecar.targets.swarm import SwarmServices

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sidecar.shutdown import StopRequest
    from sidecar.targets.base import Backend, Target
    from sidecar.targets.spec import TargetsSpec
    from sidecar.volume.found import TreeSpec

T = TypeVar("T", bound="Target")


class Targets:
    """TargetControl over containers and Swarm services.

    Services are looked for when the settings ask for them (APP_SERVICES, CERT_DELIVERY=secret)
    or when the sidecar itself runs as a swarm task; APP_LABEL then selects services by their own
    labels (`deploy.labels`) as well as containers by theirs. A plain compose setup never calls
    a Swarm endpoint.
    """

    def __init__(
        self,
        containers: DockerContainers,
        services: SwarmServices,
        *,
        names: Sequence[str] = (),
        service_names: Sequence[str] = (),
        label: str | None = None,
        swarm: bool = False,
        own_id: str | None = None,
    ) -> None:
        self._containers = containers
        self._services = services
        # every kind's backend: a new kind of target is one more entry
        self._backends: tuple[Backend[Any], ...] = (containers, services)
        self._names = tuple(names)
        self._service_names = tuple(service_names)
        self._label = label
        self._swarm = swarm
        self._own_id = own_id

    def targets(self) -> list[Target]:
        listed = self._containers.listed(self._names, self._label, self._own_id)
        own = next((c for c in listed if c.id == self._own_id), None)
        own_service = own.labels.get(SERVICE_ID) if own is not None else None
        swarm = self._swarm or own_service is not None
        services = self._services.listed(self._service_names, self._label) if swarm else []
        return select_targets(
            [*listed, *services],
            self._names,
            self._label,
            self._own_id,
            service_names=self._service_names,
            self_service=own_service,
            swarm=swarm,
        )

    def inspect(self, kind: type[T], ident: str) -> T | None:
        found: T | None = self._backend(kind).inspect(ident)
        return found

    def stop(self, target: Target) -> None:
        self._backend(type(target)).stop(target)

    def start(self, target: Target) -> None:
        self._backend(type(target)).start(target)

    def restart(self, target: Target) -> None:
        self._backend(type(target)).restart(target)

    def signal(self, target: Target, name: str) -> None:
        self._backend(type(target)).signal(target, name)

    def deliver(self, targets: Sequence[Target]) -> list[str]:
        return [
            error
            for backend in self._backends
            for error in backend.deliver([t for t in targets if isinstance(t, backend.kind)])
        ]

    def _backend(self, kind: type[Target]) -> Backend[Any]:
        return next(b for b in self._backends if b.kind is kind)


def control_for(spec: TargetsSpec, tree: TreeSpec, stopping: StopRequest) -> Targets:
    """The app's targets as the settings name them (APP_CONTAINERS, APP_SERVICES, APP_LABEL),
    in secret mode with the tree's lineages as secrets; their waits end early on `stopping`."""
    client = connect()
    own = self_id()
    return Targets(
        DockerContainers(
            client,
            stop_timeout=spec.stop_timeout,
            start_timeout=spec.start_timeout,
            stopping=stopping,
        ),
        SwarmServices(
            client,
            start_timeout=spec.start_timeout,
            stopping=stopping,
            store=secret_store(client, tree) if spec.secrets else None,
            own_id=own,
        ),
        names=spec.containers,
        service_names=spec.services,
        label=spec.label,
        swarm=spec.swarm,
        own_id=own,
    )
