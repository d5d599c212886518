"""A Docker Swarm service as a target, and its entry in the recovery record.

A service is recorded with its replica count, and, once it is at 0, with the version of its
spec: it is scaled back to that count only while it is still at 0 with that version (a service
someone scaled, updated or removed meanwhile is theirs). Scaling creates new tasks, so no stop
of ours can be pending on a service.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from sidecar.targets.base import DEFAULT_STOP_TIMEOUT, EPOCH, Look
from sidecar.volume.files import Stamp  # noqa: TC001 (pydantic reads the record's fields)

if TYPE_CHECKING:
    from datetime import datetime

    from sidecar.targets.base import TargetControl


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """A Swarm service: `labels` are its own (`deploy.labels`), `running` means it is meant to
    run tasks (replicas above 0, or global), `started_at` is when its oldest running task
    started, `finished_at` when the sidecar last scaled it to 0."""

    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = True
    started_at: datetime = EPOCH
    finished_at: datetime = EPOCH
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # its tasks' stop grace period
    replicas: int | None = 1  # its task count; None: a global service
    version: int = 0  # its spec's Version.Index: every change of the spec moves it
    signal_reloads: bool = True  # False: only new tasks see a new certificate (Swarm secrets)

    @property
    def title(self) -> str:
        return f"service {self.name}"

    @property
    def stoppable(self) -> bool:
        """A replicated service (a global one cannot be scaled to 0)."""
        return self.replicas is not None

    def log_fields(self) -> dict[str, str]:
        return {"service": self.name}

    def stopped(self, now: datetime) -> StoppedService:
        """Its record entry, written before the scale to 0: the count it gets back."""
        return StoppedService(self.id, self.name, now, self.stop_timeout, self.replicas)


@dataclass(frozen=True, slots=True)
class StoppedService:
    """A service the sidecar scaled to 0, as the record keeps it."""

    KIND: ClassVar[str] = "service"

    id: str
    name: str
    stopped_at: Stamp  # when the sidecar asked for the stop
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    replicas: int | None = None  # its task count before the stop: what it gets back
    version: int | None = None  # its spec's version once at 0 (None: not known yet)
    kind: Literal["service"] = "service"

    @property
    def title(self) -> str:
        return f"service {self.name}"

    def should_restore(self, current: ServiceTarget | None) -> bool:
        """Scale it back unless it is gone, or was scaled or updated by someone since (its spec
        version moved)."""
        return (
            current is not None
            and current.replicas == 0
            and self.version in (None, current.version)
        )

    def left_alone(self, current: ServiceTarget | None) -> str | None:
        """Why it is not scaled back, worth a warning (None: nothing to say)."""
        if current is None:
            return f"{self.title} was stopped by the sidecar but no longer exists"
        if current.replicas not in (0, None):
            return f"{self.title} was scaled to {current.replicas} by someone else; left as it is"
        if current.replicas == 0:
            return f"{self.title} was updated by someone else while at 0 replicas; left at 0"
        return None

    def look(self, control: TargetControl) -> Look:
        """What to do with it now: scaled back to the recorded count, or left as it is."""
        current = control.inspect(ServiceTarget, self.id)
        if current is not None and self.should_restore(current):
            return Look(start=dataclasses.replace(current, replicas=self.replicas or 0))
        return Look(left_alone=self.left_alone(current))

    def at_zero(self, control: TargetControl) -> StoppedService:
        """The entry with the version of its spec at 0 replicas: from then on, any change of
        the spec is someone else's."""
        current = control.inspect(ServiceTarget, self.id)
        if current is None or current.replicas != 0:
            return self
        return dataclasses.replace(self, version=current.version)
