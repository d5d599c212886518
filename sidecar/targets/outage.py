"""The record of containers the sidecar stopped, so that they are always started again.

It is written (atomically, on the shared volume) before anything is stopped, and cleared only once
every container it names has been seen stopped and started again. Whoever finds it — certbot's
process after the renewal, the post-hook, the cycle after certbot exits, or the sidecar starting
after a crash — starts what it names, unless someone else started or removed it since. A stop
that is still in progress (dockerd waits out the app's stop timeout, also after the client that
asked for it is gone) is waited for, so that the app is not killed after its record is gone.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.errors import ConfigError, LockedError, SidecarError
from sidecar.targets.base import DEFAULT_STOP_TIMEOUT, Target, TargetControl, each
from sidecar.volume.certs import now_utc
from sidecar.volume.files import exclusive_lock, read_json, write_json

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RECORD = "stopped.json"
STOP_MARGIN = 10.0  # beyond a container's stop timeout, before its stop counts as not done
POLL = 0.2


@dataclass(frozen=True, slots=True)
class Stopped:
    id: str
    name: str
    stopped_at: datetime  # when the sidecar asked for the stop
    stop_timeout: float = DEFAULT_STOP_TIMEOUT


def should_restore(entry: Stopped, current: Target | None) -> bool:
    """Start it again unless it is gone, running, or was started by someone after we stopped it."""
    return current is not None and not current.running and current.started_at < entry.stopped_at


def stop_in_progress(entry: Stopped, current: Target | None, now: datetime) -> bool:
    """Still running since before we asked it to stop, and its stop timeout not yet over: dockerd
    may be waiting to kill it."""
    if current is None or not current.running or current.started_at >= entry.stopped_at:
        return False
    return now < entry.stopped_at + timedelta(seconds=entry.stop_timeout + STOP_MARGIN)


def read_record(state_dir: Path) -> list[Stopped]:
    """What the record names; an unreadable record is moved aside and reported."""
    path = state_dir / RECORD
    try:
        data = read_json(path) or {}
        return [
            Stopped(
                x["id"],
                x["name"],
                datetime.fromisoformat(x["stopped_at"]),
                float(x.get("stop_timeout", DEFAULT_STOP_TIMEOUT)),
            )
            for x in data.get("containers", [])
        ]
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as error:
        aside = path.with_name(f"{RECORD}.unreadable-{now_utc():%Y%m%dT%H%M%SZ}")
        with contextlib.suppress(OSError):
            path.replace(aside)
        logger.error(
            "the record of stopped containers {} is unreadable ({}); moved aside to {}: check "
            "that the app containers run",
            path,
            error,
            aside.name,
        )
        return []


def _write(state_dir: Path, reason: str, entries: list[Stopped]) -> None:
    write_json(
        state_dir / RECORD,
        {
            "reason": reason,
            "containers": [
                {
                    "id": e.id,
                    "name": e.name,
                    "stopped_at": e.stopped_at.isoformat(),
                    "stop_timeout": e.stop_timeout,
                }
                for e in entries
            ],
        },
    )


def stop_targets(state_dir: Path, control: TargetControl, reason: str) -> list[str]:
    """Record, then stop the running targets; returns the names stopped."""
    fresh = [t for t in control.targets() if t.running]
    if not fresh:
        return []
    ids = {t.id for t in fresh}
    older = [s for s in read_record(state_dir) if s.id not in ids]  # still down from before
    now = now_utc()
    _write(
        state_dir, reason, [*older, *(Stopped(t.id, t.name, now, t.stop_timeout) for t in fresh)]
    )
    logger.info("stopping {} for {}", ", ".join(t.name for t in fresh), reason)
    errors = each(control.stop, fresh)
    for error in errors:
        logger.error("could not stop {}", error)
    return [t.name for t in fresh]


def _settled(entry: Stopped, control: TargetControl) -> Target | None:
    """The container once no stop of ours is in progress on it (None when it is gone)."""
    current = control.inspect(entry.id)
    if stop_in_progress(entry, current, now_utc()):
        logger.info("{} is still stopping; waiting for it to start it again", entry.name)
        while stop_in_progress(entry, current, now_utc()):
            time.sleep(POLL)
            current = control.inspect(entry.id)
    return current


def restore(state_dir: Path, control: TargetControl) -> list[str]:
    """Start every recorded container that is still down because of us; then clear the record.

    The caller holds the cycle's lock, or runs inside the certbot run of the cycle that holds it.
    """
    entries = read_record(state_dir)
    if not entries:
        return []
    todo = []
    for entry in entries:
        current = _settled(entry, control)
        if should_restore(entry, current) and current is not None:
            todo.append(current)
        elif current is None:
            logger.warning("{} was stopped by the sidecar but no longer exists", entry.name)
        elif not current.running and current.started_at >= entry.stopped_at:
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
    """At the start of a cycle (under its lock): start what an interrupted run left stopped."""
    if left := restore(state_dir, control):
        logger.warning("started {} again: an earlier run had left them stopped", ", ".join(left))
    return left


@contextlib.contextmanager
def _unless_a_cycle_runs(state_dir: Path) -> Iterator[bool]:
    """The cycle's lock, if free: a running cycle's record is that cycle's to restore (its app
    may be stopped for a challenge right now)."""
    lock = exclusive_lock(state_dir / "lock")
    try:
        lock.__enter__()
    except LockedError:
        logger.info("a renewal cycle is running; it starts what it stopped")
        yield False
        return
    try:
        yield True
    finally:
        lock.__exit__(None, None, None)


def recover(state_dir: Path, control: TargetControl) -> list[str]:
    """Outside a cycle (the sidecar starting): restore_left, unless a cycle runs meanwhile."""
    with _unless_a_cycle_runs(state_dir) as free:
        return restore_left(state_dir, control) if free else []


def settle(state_dir: Path, control: TargetControl) -> bool:
    """After a cycle: try to start what the record names; True once nothing is left stopped
    because of us (or another cycle now owns the record)."""
    with _unless_a_cycle_runs(state_dir) as free:
        if not free:
            return True
        try:
            restore(state_dir, control)
        except SidecarError as error:
            logger.error("could not start the app containers again: {}", error)
        return not read_record(state_dir)
