"""Which of the listed containers and services are the app's targets (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from sidecar.errors import ConfigError
from sidecar.targets.base import NoTargetError, Target
from sidecar.targets.container import ContainerTarget
from sidecar.targets.marks import label_matches
from sidecar.targets.service import ServiceTarget

if TYPE_CHECKING:
    from collections.abc import Sequence

K = TypeVar("K", ContainerTarget, ServiceTarget)


def select_targets(
    candidates: Sequence[Target],
    names: Sequence[str],
    label: str | None,
    self_id: str | None,
    *,
    service_names: Sequence[str] = (),
    self_service: str | None = None,
    swarm: bool = False,
) -> list[Target]:
    """The configured targets: containers by name (APP_CONTAINERS), services by name
    (APP_SERVICES), both by label (APP_LABEL: a container's labels, a service's own labels);
    never the sidecar itself (its container or, in a swarm, its service), never a one-off
    (`docker compose run` copies the service's labels) or a swarm task container (swarm would
    replace it: its service is the target), never a container a stop deletes. `swarm`: services
    were looked for too. Containers first, then services, each by name."""
    containers = [c for c in candidates if isinstance(c, ContainerTarget)]
    tasks = [c for c in containers if c.task_of is not None]
    apps = [c for c in containers if not c.one_off and c.task_of is None]
    services = [s for s in candidates if isinstance(s, ServiceTarget)]
    chosen_apps = _named(apps, names, "APP_CONTAINERS", "container", tasks)
    chosen_services = _named(services, service_names, "APP_SERVICES", "service")
    if label:
        matched_apps = _labelled(apps, label)
        matched_services = _labelled(services, label)
        if not (matched_apps or matched_services or names or service_names):
            raise NoTargetError(_nothing_has(label, tasks, swarm=swarm))
        chosen_apps.update(matched_apps)
        chosen_services.update(matched_services)
    chosen: dict[str, Target] = {**chosen_apps, **chosen_services}
    for own in (self_id, self_service):
        if own and own in chosen:
            raise ConfigError(f"{chosen[own].title} is the sidecar itself; it must not be a target")
    if removed := sorted(c.name for c in chosen_apps.values() if c.auto_remove):
        raise ConfigError(
            f"{', '.join(removed)} runs with AutoRemove (`docker run --rm`): stopping it for the "
            "challenge would delete it; run it without --rm (e.g. `restart: unless-stopped`)"
        )
    return [*_by_name(chosen_apps), *_by_name(chosen_services)]


def _by_name(chosen: dict[str, K]) -> list[K]:
    return sorted(chosen.values(), key=lambda c: c.name)


def _labelled(items: Sequence[K], label: str) -> dict[str, K]:
    return {c.id: c for c in items if label_matches(c.labels, label)}


def _named(
    items: Sequence[K],
    names: Sequence[str],
    variable: str,
    what: str,
    tasks: Sequence[ContainerTarget] = (),
) -> dict[str, K]:
    """The targets named, by id; NoTargetError naming each one missing (ConfigError for a swarm
    task's container, naming its service instead)."""
    found = {c.name: c for c in items}
    missing = [n for n in names if n not in found]
    if task := next((t for t in tasks if t.name in missing), None):
        raise ConfigError(
            f"APP_CONTAINERS: {task.name} is a task of the swarm service {task.task_of} (swarm "
            f"replaces a stopped task): name {task.task_of} in APP_SERVICES instead"
        )
    if missing:
        raise NoTargetError(f"{variable}: no {what} named {', '.join(missing)}")
    return {found[n].id: found[n] for n in names}


def _nothing_has(label: str, tasks: Sequence[ContainerTarget], *, swarm: bool) -> str:
    """Why APP_LABEL selects nothing; swarm tasks carrying it name their service and the fix."""
    what = "container or service" if swarm else "container"
    message = f"APP_LABEL: no {what} has the label {label}"
    if labelled := sorted({str(t.task_of) for t in tasks if label_matches(t.labels, label)}):
        message += (
            f" (tasks of the swarm service {', '.join(labelled)} have it as a container label: "
            "put it under the service's deploy.labels)"
        )
    return message
