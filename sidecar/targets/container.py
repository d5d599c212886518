"""A Docker (or Podman) container as a target, and its entry in the recovery record.

Whether a container was started since the sidecar stopped it is decided on the engine's clock
alone: the entry keeps the `StartedAt` of the run that was stopped, and a container that still
has it was not started by anyone (the sidecar's clock, or a remote engine's, may be off or step).
A stop still in progress (dockerd waits out the app's stop timeout, also after the client that
asked for it is gone) is waited for, so that the app is not killed after its record is gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from loguru import logger

from sidecar.targets.base import DEFAULT_STOP_TIMEOUT, EPOCH, Look
from sidecar.targets.marks import ONE_OFF, TASK_ID, TASK_SERVICE
from sidecar.volume.certs import now_utc
from sidecar.volume.files import Stamp  # noqa: TC001 (pydantic reads the record's fields)

if TYPE_CHECKING:
    from sidecar.targets.base import TargetControl

STOP_MARGIN = 10.0  # beyond a container's stop timeout, before its stop counts as not done
POLL = 0.2


@dataclass(frozen=True, slots=True)
class ContainerTarget:
    """A container as the sidecar sees it."""

    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = True
    started_at: datetime = EPOCH
    finished_at: datetime = EPOCH  # when it last stopped (Docker's State.FinishedAt)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # seconds a stop may take before the kill
    auto_remove: bool = False  # `docker run --rm`: a stop deletes it

    @property
    def title(self) -> str:
        return self.name

    @property
    def stoppable(self) -> bool:
        return True

    @property
    def signal_reloads(self) -> bool:
        return True

    def log_fields(self) -> dict[str, str]:
        return {"container": self.name}

    @property
    def one_off(self) -> bool:
        """A `docker compose run` container: it carries its service's labels, but it is a task."""
        return self.labels.get(ONE_OFF) == "True"

    @property
    def task_of(self) -> str | None:
        """The swarm service whose task this container is (swarm replaces a stopped task)."""
        return self.labels.get(TASK_SERVICE, "?") if TASK_ID in self.labels else None

    def stopped(self, now: datetime) -> StoppedContainer:
        """Its record entry, written before it is stopped: with the engine's StartedAt of the
        run being stopped."""
        return StoppedContainer(self.id, self.name, now, self.stop_timeout, self.started_at)


@dataclass(frozen=True, slots=True)
class StoppedContainer:
    """A container the sidecar stopped, as the record keeps it."""

    KIND: ClassVar[str] = "container"  # older records name no kind: a container

    id: str
    name: str
    stopped_at: Stamp  # when the sidecar asked for the stop (its own clock)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    # the container's StartedAt (engine clock) when we stopped it; None in older records
    started_at: Stamp | None = None

    @property
    def title(self) -> str:
        return self.name

    def started_since(self, current: ContainerTarget) -> bool:
        """Started again after our stop: the engine's StartedAt against the one recorded at the
        stop (engine clock against engine clock); a record without it falls back to our stop
        time."""
        if self.started_at is not None:
            return current.started_at > self.started_at
        return current.started_at >= self.stopped_at

    def should_restore(self, current: ContainerTarget | None) -> bool:
        """Start it again unless it is gone, running, or was started by someone after our stop."""
        return current is not None and not current.running and not self.started_since(current)

    def left_alone(self, current: ContainerTarget | None) -> str | None:
        """Why it is not started again, worth a warning (None: nothing to say)."""
        if current is None:
            return f"{self.title} was stopped by the sidecar but no longer exists"
        if not current.running:
            return f"{self.title} was started and stopped again by someone else; left stopped"
        return None

    def stop_in_progress(self, current: ContainerTarget | None, now: datetime) -> bool:
        """Still running since before we asked it to stop, and its stop timeout not yet over:
        dockerd may be waiting to kill it."""
        if current is None or not current.running or self.started_since(current):
            return False  # gone, stopped, or a new run: our stop is over
        # our own clock against the stop time it wrote
        return now < self.stopped_at + timedelta(seconds=self.stop_timeout + STOP_MARGIN)

    def look(self, control: TargetControl) -> Look:
        """What to do with it now, once no stop of ours is in progress on it."""
        current = control.inspect(ContainerTarget, self.id)
        if self.stop_in_progress(current, now_utc()):
            logger.info("{} is still stopping; waiting for it to start it again", self.name)
            while self.stop_in_progress(current, now_utc()):
                time.sleep(POLL)
                current = control.inspect(ContainerTarget, self.id)
        if current is not None and self.should_restore(current):
            return Look(start=current)
        return Look(left_alone=self.left_alone(current))

    def at_zero(self, control: TargetControl) -> StoppedContainer:
        """Nothing to add once it is stopped."""
        del control
        return self
