"""What the sidecar stops, starts and reloads: the protocols every kind of target implements.

A kind is one module: its target type (`container.ContainerTarget`, `service.ServiceTarget`),
its entry in the recovery record, and a backend that acts on it (`engine.DockerContainers`,
`swarm.SwarmServices`), listed in `control.Targets`. No Docker type leaks out of the backends.
The one way to act on several targets at once lives here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from loguru import logger

from sidecar.errors import ConfigError, SidecarError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

EPOCH = datetime.fromtimestamp(0, UTC)
DEFAULT_STOP_TIMEOUT = 10.0  # Docker's, when neither STOP_TIMEOUT nor the container sets one


class NoTargetError(ConfigError):
    """The configured app containers are not there (yet): a compose recreate may be under way."""


class Target(Protocol):
    """A target as the cycle and the record see it, whatever its kind."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def running(self) -> bool: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime: ...
    @property
    def stop_timeout(self) -> float: ...
    @property
    def title(self) -> str:
        """How log lines name it (`web`, `service shop_web`)."""
        ...

    @property
    def stoppable(self) -> bool:
        """It can be stopped for the challenge (a global service cannot be scaled to 0)."""
        ...

    @property
    def signal_reloads(self) -> bool:
        """A signal makes it load a new certificate (False: only a restart does)."""
        ...

    def log_fields(self) -> dict[str, str]:
        """Its name under its kind, a stable field of JSON log lines (`container=web`)."""
        ...

    def stopped(self, now: datetime) -> Stopped:
        """Its entry in the recovery record, written before it is stopped at `now`."""
        ...


@dataclass(frozen=True, slots=True)
class Look:
    """A recorded target as it is now: the one to start (None: nothing), or why it is left as
    it is (None: nothing worth a warning)."""

    start: Target | None = None
    left_alone: str | None = None


class Stopped(Protocol):
    """A target the sidecar stopped, as the recovery record keeps it (`outage`)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    def look(self, control: TargetControl) -> Look:
        """What to do with it now (a stop of ours still in progress is waited out first)."""
        ...

    def at_zero(self, control: TargetControl) -> Stopped:
        """The entry once its stop is done, with what only then is known."""
        ...


T = TypeVar("T", bound=Target)


class TargetControl(Protocol):
    """What the renewal cycle needs from an orchestrator."""

    def targets(self) -> list[Target]: ...
    def inspect(self, kind: type[T], ident: str) -> T | None:
        """The target of type `kind` with id `ident` as it is now; None when it is gone."""
        ...

    def stop(self, target: Target) -> None: ...
    def start(self, target: Target) -> None: ...
    def restart(self, target: Target) -> None: ...
    def signal(self, target: Target, name: str) -> None: ...
    def deliver(self, targets: Sequence[Target]) -> list[str]:
        """Bring the current certificates to targets that do not read them from the volume
        (Swarm secrets); the errors."""
        ...


K = TypeVar("K", bound=Target)


class Backend(Protocol[K]):
    """The API of one kind of target (`kind`): what `control.Targets` hands each target to."""

    kind: type[K]

    def inspect(self, ident: str) -> K | None: ...
    def stop(self, target: K) -> None: ...
    def start(self, target: K) -> None: ...
    def restart(self, target: K) -> None: ...
    def signal(self, target: K, name: str) -> None: ...
    def deliver(self, targets: Sequence[K]) -> list[str]: ...


def each(fn: Callable[[T], None], targets: Iterable[T]) -> list[str]:
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
