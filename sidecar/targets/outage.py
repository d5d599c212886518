"""The record of containers the sidecar stopped, so that they are always started again.

It is written (atomically, on the shared volume) before anything is stopped, and cleared once
they run again. Whoever finds it — the post-hook, the cycle after certbot exits, or the sidecar
starting after a crash — starts what it names, unless someone else started it since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.errors import SidecarError
from sidecar.targets.base import Target, TargetControl, each
from sidecar.volume.certs import now_utc
from sidecar.volume.files import read_json, write_json

if TYPE_CHECKING:
    from pathlib import Path

RECORD = "stopped.json"


@dataclass(frozen=True, slots=True)
class Stopped:
    id: str
    name: str
    stopped_at: datetime


def should_restore(entry: Stopped, current: Target | None) -> bool:
    """Start it again unless it is gone, running, or was started by someone after we stopped it."""
    return current is not None and not current.running and current.started_at < entry.stopped_at


def read_record(state_dir: Path) -> list[Stopped]:
    data = read_json(state_dir / RECORD) or {}
    return [
        Stopped(x["id"], x["name"], datetime.fromisoformat(x["stopped_at"]))
        for x in data.get("containers", [])
    ]


def stop_targets(state_dir: Path, control: TargetControl, reason: str) -> list[str]:
    """Record, then stop the running targets; returns the names stopped."""
    fresh = [t for t in control.targets() if t.running]
    if not fresh:
        return []
    ids = {t.id for t in fresh}
    older = [s for s in read_record(state_dir) if s.id not in ids]  # still down from before
    entries = [*older, *(Stopped(t.id, t.name, now_utc()) for t in fresh)]
    write_json(
        state_dir / RECORD,
        {
            "reason": reason,
            "containers": [
                {"id": e.id, "name": e.name, "stopped_at": e.stopped_at.isoformat()}
                for e in entries
            ],
        },
    )
    logger.info("stopping {} for {}", ", ".join(t.name for t in fresh), reason)
    errors = each(control.stop, fresh)
    for error in errors:
        logger.error("could not stop {}", error)
    return [t.name for t in fresh]


def restore(state_dir: Path, control: TargetControl) -> list[str]:
    """Start every recorded container that is still down because of us; then clear the record."""
    entries = read_record(state_dir)
    if not entries:
        return []
    todo = []
    for entry in entries:
        current = control.inspect(entry.id)
        if should_restore(entry, current) and current is not None:
            todo.append(current)
        elif current is None:
            logger.warning("{} was stopped by the sidecar but no longer exists", entry.name)
        elif not current.running:
            logger.warning(
                "{} was started and stopped again by someone else; left stopped", entry.name
            )
    if todo:
        logger.info("starting {}", ", ".join(t.name for t in todo))
    errors = each(control.start, todo)
    for error in errors:
        logger.error("could not start {}", error)
    if not errors:
        (state_dir / RECORD).unlink(missing_ok=True)
    return [t.name for t in todo]


def restore_left(state_dir: Path, control: TargetControl) -> list[str]:
    """At start: start what an earlier, interrupted run left stopped, and say so."""
    if left := restore(state_dir, control):
        logger.warning("started {} again: an earlier run had left them stopped", ", ".join(left))
    return left


def settle(state_dir: Path, control: TargetControl) -> bool:
    """Try to start what the record names; True once nothing is left stopped because of us."""
    try:
        restore(state_dir, control)
    except SidecarError as error:
        logger.error("could not start the app containers again: {}", error)
    return not read_record(state_dir)
