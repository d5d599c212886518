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


@dataclass(frozen=True, slots=True)
class Target:
    """A container as the sidecar sees it."""

    id: str
    name: str
    labels: dict[str, str]
    running: bool
    started_at: datetime = EPOCH
    finished_at: datetime = EPOCH  # when it last stopped (Docker's State.FinishedAt)


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
    """The configured containers: by name and/or label, never the sidecar itself."""
    by_name = {c.name: c for c in containers}
    if missing := [n for n in names if n not in by_name]:
        raise ConfigError(f"APP_CONTAINERS: no container named {', '.join(missing)}")
    chosen = {by_name[n].id: by_name[n] for n in names}
    if label:
        matched = [c for c in containers if label_matches(c.labels, label)]
        if not matched and not names:
            raise ConfigError(f"APP_LABEL: no container has the label {label}")
        chosen.update({c.id: c for c in matched})
    if self_id and self_id in chosen:
        raise ConfigError(f"{chosen[self_id].name} is the sidecar itself; it must not be a target")
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
