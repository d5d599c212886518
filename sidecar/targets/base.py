"""What the sidecar stops, starts and reloads: the Target type and the control protocol.

Docker's containers implement it today (`sidecar.targets.engine`); no Docker type leaks out of
there. Pure selection rules and the one way to act on several targets at once live here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from sidecar.errors import ConfigError, SidecarError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

EPOCH = datetime.fromtimestamp(0, UTC)
DEFAULT_STOP_TIMEOUT = 10.0  # Docker's, when neither STOP_TIMEOUT nor the container sets one
ONE_OFF = "com.docker.compose.oneoff"


class NoTargetError(ConfigError):
    """The configured app containers are not there (yet): a compose recreate may be under way."""


@dataclass(frozen=True, slots=True)
class Target:
    """A container as the sidecar sees it."""

    id: str
    name: str
    labels: dict[str, str]
    running: bool
    started_at: datetime = EPOCH
    finished_at: datetime = EPOCH  # when it last stopped (Docker's State.FinishedAt)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # seconds a stop may take before the kill
    auto_remove: bool = False  # `docker run --rm`: a stop deletes it

    @property
    def one_off(self) -> bool:
        """A `docker compose run` container: it carries its service's labels, but it is a task."""
        return self.labels.get(ONE_OFF) == "True"


class TargetControl(Protocol):
    """What the renewal cycle needs from an orchestrator."""

    def targets(self) -> list[Target]: ...
    def inspect(self, ident: str) -> Target | None: ...
    def stop(self, target: Target) -> None: ...
    def start(self, target: Target) -> None: ...
    def restart(self, target: Target) -> None: ...
    def signal(self, target: Target, name: str) -> None: ...


def label_matches(labels: dict[str, str], selector: str) -> bool:
    key, sep, value = selector.partition("=")
    return key in labels and (not sep or labels[key] == value)


def select_targets(
    containers: Sequence[Target],
    names: Sequence[str],
    label: str | None,
    self_id: str | None,
) -> list[Target]:
    """The configured containers: by name and/or label; never the sidecar itself, never a
    one-off task (`docker compose run` copies the service's labels), never one a stop deletes."""
    apps = [c for c in containers if not c.one_off]
    by_name = {c.name: c for c in apps}
    if missing := [n for n in names if n not in by_name]:
        raise NoTargetError(f"APP_CONTAINERS: no container named {', '.join(missing)}")
    chosen = {by_name[n].id: by_name[n] for n in names}
    if label:
        matched = [c for c in apps if label_matches(c.labels, label)]
        if not matched and not names:
            raise NoTargetError(f"APP_LABEL: no container has the label {label}")
        chosen.update({c.id: c for c in matched})
    if self_id and self_id in chosen:
        raise ConfigError(f"{chosen[self_id].name} is the sidecar itself; it must not be a target")
    if removed := sorted(c.name for c in chosen.values() if c.auto_remove):
        raise ConfigError(
            f"{', '.join(removed)} runs with AutoRemove (`docker run --rm`): stopping it for the "
            "challenge would delete it; run it without --rm (e.g. `restart: unless-stopped`)"
        )
    return sorted(chosen.values(), key=lambda c: c.name)


def each(fn: Callable[[Target], None], targets: Iterable[Target]) -> list[str]:
    """Apply `fn` to all targets at once; every one is tried; returns the errors."""
    items = list(targets)
    if not items:
        return []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for target, future in [(t, pool.submit(fn, t)) for t in items]:
            try:
                future.result()
            except SidecarError as error:
                errors.append(f"{target.name}: {error}")
    return errors
