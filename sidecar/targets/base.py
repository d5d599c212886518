"""What the sidecar stops, starts and reloads: the Target type and the control protocol.

Two kinds implement it: Docker containers (`sidecar.targets.engine`) and Swarm services
(`sidecar.targets.swarm`), joined in `sidecar.targets.control`; no Docker type leaks out of there.
Pure selection rules and the one way to act on several targets at once live here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from sidecar.errors import ConfigError, SidecarError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

EPOCH = datetime.fromtimestamp(0, UTC)
DEFAULT_STOP_TIMEOUT = 10.0  # Docker's, when neither STOP_TIMEOUT nor the container sets one
ONE_OFF = "com.docker.compose.oneoff"
CONTAINER, SERVICE = "container", "service"
TASK_ID = "com.docker.swarm.task.id"  # on every container a swarm task runs in
TASK_SERVICE = "com.docker.swarm.service.name"


class NoTargetError(ConfigError):
    """The configured app containers are not there (yet): a compose recreate may be under way."""


@dataclass(frozen=True, slots=True)
class Target:
    """A container, or a Swarm service, as the sidecar sees it.

    For a service: `labels` are the service's own (`deploy.labels`), `running` means it is meant
    to run tasks (replicas above 0, or global), `started_at` is when its oldest running task
    started, `finished_at` when the sidecar last scaled it to 0.
    """

    id: str
    name: str
    labels: dict[str, str]
    running: bool
    started_at: datetime = EPOCH
    finished_at: datetime = EPOCH  # when it last stopped (Docker's State.FinishedAt)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # seconds a stop may take before the kill
    auto_remove: bool = False  # `docker run --rm`: a stop deletes it
    kind: str = CONTAINER
    replicas: int | None = None  # a replicated service's task count; None: global, container
    version: int | None = None  # a service's Version.Index: every change of its spec moves it
    signal_reloads: bool = True  # False: only new tasks see a new certificate (Swarm secrets)

    @property
    def one_off(self) -> bool:
        """A `docker compose run` container: it carries its service's labels, but it is a task."""
        return self.labels.get(ONE_OFF) == "True"

    @property
    def task_of(self) -> str | None:
        """The swarm service whose task this container is (swarm replaces a stopped task)."""
        return self.labels.get(TASK_SERVICE, "?") if TASK_ID in self.labels else None

    @property
    def stoppable(self) -> bool:
        """A container, or a replicated service (a global one cannot be scaled to 0)."""
        return self.kind == CONTAINER or self.replicas is not None

    @property
    def title(self) -> str:
        """How log lines name it: containers by name, services as `service NAME`."""
        return self.name if self.kind == CONTAINER else f"service {self.name}"


class TargetControl(Protocol):
    """What the renewal cycle needs from an orchestrator."""

    def targets(self) -> list[Target]: ...
    def inspect(self, ident: str, kind: str = CONTAINER) -> Target | None: ...
    def stop(self, target: Target) -> None: ...
    def start(self, target: Target) -> None: ...
    def restart(self, target: Target) -> None: ...
    def signal(self, target: Target, name: str) -> None: ...
    def deliver(self, targets: Sequence[Target]) -> list[str]:
        """Bring the current certificates to targets that do not read them from the volume
        (Swarm secrets); the errors."""
        ...


def label_matches(labels: dict[str, str], selector: str) -> bool:
    key, sep, value = selector.partition("=")
    return key in labels and (not sep or labels[key] == value)


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
    were looked for too."""
    containers = [c for c in candidates if c.kind == CONTAINER]
    tasks = [c for c in containers if c.task_of is not None]
    apps = [c for c in containers if not c.one_off and c.task_of is None]
    services = [s for s in candidates if s.kind == SERVICE]
    chosen = _named(apps, names, CONTAINER, tasks) | _named(services, service_names, SERVICE)
    if label:
        matched = [c for c in [*apps, *services] if label_matches(c.labels, label)]
        if not matched and not names and not service_names:
            raise NoTargetError(_nothing_has(label, tasks, swarm=swarm))
        chosen.update({c.id: c for c in matched})
    for own in (self_id, self_service):
        if own and own in chosen:
            raise ConfigError(f"{chosen[own].title} is the sidecar itself; it must not be a target")
    if removed := sorted(c.name for c in chosen.values() if c.auto_remove):
        raise ConfigError(
            f"{', '.join(removed)} runs with AutoRemove (`docker run --rm`): stopping it for the "
            "challenge would delete it; run it without --rm (e.g. `restart: unless-stopped`)"
        )
    return sorted(chosen.values(), key=lambda c: (c.kind, c.name))


def _named(
    items: Sequence[Target], names: Sequence[str], kind: str, tasks: Sequence[Target] = ()
) -> dict[str, Target]:
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
        variable = "APP_CONTAINERS" if kind == CONTAINER else "APP_SERVICES"
        raise NoTargetError(f"{variable}: no {kind} named {', '.join(missing)}")
    return {found[n].id: found[n] for n in names}


def _nothing_has(label: str, tasks: Sequence[Target], *, swarm: bool) -> str:
    """Why APP_LABEL selects nothing; swarm tasks carrying it name their service and the fix."""
    what = "container or service" if swarm else "container"
    message = f"APP_LABEL: no {what} has the label {label}"
    if labelled := sorted({str(t.task_of) for t in tasks if label_matches(t.labels, label)}):
        message += (
            f" (tasks of the swarm service {', '.join(labelled)} have it as a container label: "
            "put it under the service's deploy.labels)"
        )
    return message


def each(fn: Callable[[Target], None], targets: Iterable[Target]) -> list[str]:
    """Apply `fn` to all targets at once; every one is tried, whatever another one raised (a
    bug too: an app is never left down because of another target's exception); the errors."""
    items = list(targets)
    if not items:
        return []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for target, future in [(t, pool.submit(fn, t)) for t in items]:
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 (reported by failure(); the others go on)
                errors.append(failure(target.title, error))
    return errors


def failure(what: str, error: Exception) -> str:
    """One error line about `what`. An error that is no SidecarError is a bug: it is logged once
    with its traceback, and named by its type in the line."""
    if isinstance(error, SidecarError):
        return f"{what}: {error}"
    logger.opt(exception=error).error("An unexpected error occurred with {}", what)
    return f"{what}: unexpected {type(error).__name__}: {error}"
