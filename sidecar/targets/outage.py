"""The record of the targets the sidecar stopped, so that they are always started again.

It is written (atomically, on the shared volume) before anything is stopped, and cleared only once
every target it names has been seen stopped and started again. Whoever finds it — certbot's
process after the renewal, the post-hook, the cycle after certbot exits, or the sidecar starting
after a crash — starts what it names, unless someone else started or removed it since. A stop
that is still in progress (dockerd waits out the app's stop timeout, also after the client that
asked for it is gone) is waited for, so that the app is not killed after its record is gone.

A Swarm service is recorded with its replica count, and, once it is at 0, with the version of
its spec: it is scaled back to that count only while it is still at 0 with that version (a
service someone scaled, updated or removed meanwhile is theirs). Scaling creates new tasks, so
no stop of ours can be pending on a service.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.errors import ConfigError, LockedError, SidecarError
from sidecar.targets.base import (
    CONTAINER,
    DEFAULT_STOP_TIMEOUT,
    SERVICE,
    Target,
    TargetControl,
    each,
)
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
    kind: str = CONTAINER
    replicas: int | None = None  # a service's task count before the stop: what it gets back
    version: int | None = None  # a service's spec version once at 0 (None: not known yet)

    @property
    def title(self) -> str:
        return self.name if self.kind == CONTAINER else f"service {self.name}"


def should_restore(entry: Stopped, current: Target | None) -> bool:
    """Start it again unless it is gone, running, or was started by someone after we stopped it;
    a service unless it was scaled or updated by someone since (its spec version moved)."""
    if current is None:
        return False
    if entry.kind == SERVICE:
        return current.replicas == 0 and entry.version in (None, current.version)
    return not current.running and current.started_at < entry.stopped_at


def left_alone(entry: Stopped, current: Target | None) -> str | None:
    """Why a recorded target is not started again, worth a warning (None: nothing to say)."""
    if current is None:
        return f"{entry.title} was stopped by the sidecar but no longer exists"
    if entry.kind == SERVICE and current.replicas not in (0, None):
        return f"{entry.title} was scaled to {current.replicas} by someone else; left as it is"
    if entry.kind == SERVICE and current.replicas == 0:
        return f"{entry.title} was updated by someone else while at 0 replicas; left at 0"
    if entry.kind == CONTAINER and not current.running:
        return f"{entry.title} was started and stopped again by someone else; left stopped"
    return None


def stop_in_progress(entry: Stopped, current: Target | None, now: datetime) -> bool:
    """Still running since before we asked it to stop, and its stop timeout not yet over: dockerd
    may be waiting to kill it. Never for a service: scaling it up makes new tasks."""
    if entry.kind == SERVICE or current is None or not current.running:
        return False
    if current.started_at >= entry.stopped_at:
        return False
    return now < entry.stopped_at + timedelta(seconds=entry.stop_timeout + STOP_MARGIN)


def read_record(state_dir: Path) -> list[Stopped]:
    """What the record names; an unreadable record is moved aside and reported."""
    path = state_dir / RECORD
    try:
        data = read_json(path) or {}
        return [_entry(x) for x in data.get("targets", data.get("containers", []))]
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


def _entry(item: dict[str, object]) -> Stopped:
    replicas, version = item.get("replicas"), item.get("version")
    return Stopped(
        str(item["id"]),
        str(item["name"]),
        datetime.fromisoformat(str(item["stopped_at"])),
        float(item.get("stop_timeout", DEFAULT_STOP_TIMEOUT)),  # type: ignore[arg-type]
        str(item.get("kind", CONTAINER)),
        None if replicas is None else int(replicas),  # type: ignore[call-overload]
        None if version is None else int(version),  # type: ignore[call-overload]
    )


def _write(state_dir: Path, reason: str, entries: list[Stopped]) -> None:
    def item(e: Stopped) -> dict[str, object]:
        base = {
            "id": e.id,
            "name": e.name,
            "stopped_at": e.stopped_at.isoformat(),
            "stop_timeout": e.stop_timeout,
        }
        if e.kind == CONTAINER:
            return base
        return {**base, "kind": e.kind, "replicas": e.replicas, "version": e.version}

    write_json(state_dir / RECORD, {"reason": reason, "targets": [item(e) for e in entries]})


def stop_targets(state_dir: Path, control: TargetControl, reason: str) -> list[str]:
    """Record, then stop the running targets; returns the names stopped. A global service cannot
    be stopped: it keeps running (and must not hold the challenge port on this node)."""
    running = [t for t in control.targets() if t.running]
    for target in (t for t in running if not t.stoppable):
        logger.info(
            "{} is global (it cannot be scaled to 0): it keeps running during the challenge",
            target.title,
        )
    fresh = [t for t in running if t.stoppable]
    if not fresh:
        return []
    ids = {t.id for t in fresh}
    older = [s for s in read_record(state_dir) if s.id not in ids]  # still down from before
    now = now_utc()
    entries = [Stopped(t.id, t.name, now, t.stop_timeout, t.kind, t.replicas) for t in fresh]
    _write(state_dir, reason, [*older, *entries])
    logger.info("stopping {} for {}", ", ".join(t.title for t in fresh), reason)
    errors = each(control.stop, fresh)
    for error in errors:
        logger.error("could not stop {}", error)
    if any(t.kind == SERVICE for t in fresh):
        _write(state_dir, reason, [*older, *(_at_zero(e, control) for e in entries)])
    return [t.name for t in fresh]


def _at_zero(entry: Stopped, control: TargetControl) -> Stopped:
    """A service's entry with the version of its spec at 0 replicas: from then on, any change of
    the spec is someone else's."""
    if entry.kind != SERVICE:
        return entry
    current = control.inspect(entry.id, SERVICE)
    if current is None or current.replicas != 0:
        return entry
    return dataclasses.replace(entry, version=current.version)


def _settled(entry: Stopped, control: TargetControl) -> Target | None:
    """The container once no stop of ours is in progress on it (None when it is gone)."""
    current = control.inspect(entry.id, entry.kind)
    if stop_in_progress(entry, current, now_utc()):
        logger.info("{} is still stopping; waiting for it to start it again", entry.name)
        while stop_in_progress(entry, current, now_utc()):
            time.sleep(POLL)
            current = control.inspect(entry.id, entry.kind)
    return current


def restore(state_dir: Path, control: TargetControl) -> list[str]:
    """Start every recorded target that is still down because of us (a service with its recorded
    replica count); then clear the record.

    The caller holds the cycle's lock, or runs inside the certbot run of the cycle that holds it.
    """
    entries = read_record(state_dir)
    if not entries:
        return []
    todo = []
    for entry in entries:
        current = _settled(entry, control)
        if should_restore(entry, current) and current is not None:
            todo.append(dataclasses.replace(current, replicas=entry.replicas or current.replicas))
        elif why := left_alone(entry, current):
            logger.warning("{}", why)
    if todo:
        logger.info("starting {}", ", ".join(t.title for t in todo))
    started: list[str] = []

    def start(target: Target) -> None:
        control.start(target)
        started.append(target.id)

    errors = each(start, todo)
    for error in errors:
        logger.error("could not start {}", error)
    if errors:  # only what could not be started stays recorded (a service we scaled up again
        # would look scaled by someone else)
        failed = {t.id for t in todo} - set(started)
        _write(state_dir, "not started again yet", [e for e in entries if e.id in failed])
    else:
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
