"""The record of the targets the sidecar stopped, so that they are always started again.

It is written (atomically, on the shared volume) before anything is stopped, and cleared only once
every target it names has been seen stopped and started again. Whoever finds it — certbot's
process after the renewal, the post-hook, the cycle after certbot exits, the sidecar starting
after a crash, the idle daemon noticing a record no cycle holds, whoever holds the cycle's lock
before releasing it — starts what it names, unless someone else started or removed it since. A
stop that is still in progress (dockerd waits out the app's stop timeout, also after the client
that asked for it is gone) is waited for, so that the app is not killed after its record is gone.

Whether a container was started since is decided on the engine's clock alone: the record keeps
the `StartedAt` of the run that was stopped, and a container that still has it was not started
by anyone (the sidecar's clock, or a remote engine's, may be off or step).

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

from sidecar.errors import ConfigError, LockedError, NotReadyError, SidecarError
from sidecar.targets.base import (
    CONTAINER,
    DEFAULT_STOP_TIMEOUT,
    SERVICE,
    Target,
    TargetControl,
    each,
    failure,
)
from sidecar.volume.certs import now_utc
from sidecar.volume.files import exclusive_lock, read_json, write_json
from sidecar.volume.watch import LOCK, RECORD

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["RECORD", "Stopped", "cycle_lock", "read_record", "recover", "restore", "settle"]
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
    # a container's StartedAt (engine clock) when we stopped it; None in older records
    started_at: datetime | None = None

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
    return not current.running and not _started_since(entry, current)


def _started_since(entry: Stopped, current: Target) -> bool:
    """Started again after our stop: the engine's StartedAt against the one recorded at the stop
    (engine clock against engine clock); a record without it falls back to our stop time."""
    if entry.started_at is not None:
        return current.started_at > entry.started_at
    return current.started_at >= entry.stopped_at


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
    if _started_since(entry, current):
        return False  # a new run: our stop is over
    # our own clock against the stop time it wrote
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
    replicas, version, started = item.get("replicas"), item.get("version"), item.get("started_at")
    return Stopped(
        str(item["id"]),
        str(item["name"]),
        datetime.fromisoformat(str(item["stopped_at"])),
        float(item.get("stop_timeout", DEFAULT_STOP_TIMEOUT)),  # type: ignore[arg-type]
        str(item.get("kind", CONTAINER)),
        None if replicas is None else int(replicas),  # type: ignore[call-overload]
        None if version is None else int(version),  # type: ignore[call-overload]
        None if started is None else datetime.fromisoformat(str(started)),
    )


def _write(state_dir: Path, reason: str, entries: list[Stopped]) -> None:
    """The record, synced to disk with its directory before this returns (before any stop)."""

    def item(e: Stopped) -> dict[str, object]:
        base = {
            "id": e.id,
            "name": e.name,
            "stopped_at": e.stopped_at.isoformat(),
            "stop_timeout": e.stop_timeout,
        }
        if e.kind == CONTAINER:
            started = {} if e.started_at is None else {"started_at": e.started_at.isoformat()}
            return {**base, **started}
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
    entries = [_stopped(t, now) for t in fresh]
    _write(state_dir, reason, [*older, *entries])
    logger.info("stopping {} for {}", ", ".join(t.title for t in fresh), reason)
    errors = each(control.stop, fresh)
    for error in errors:
        logger.error("could not stop {}", error)
    if any(t.kind == SERVICE for t in fresh):
        _write(state_dir, reason, [*older, *(_at_zero(e, control) for e in entries)])
    return [t.name for t in fresh]


def _stopped(target: Target, now: datetime) -> Stopped:
    """The entry for a target about to be stopped: a container with the engine's StartedAt of
    the run being stopped."""
    if target.kind == SERVICE:
        return Stopped(target.id, target.name, now, target.stop_timeout, SERVICE, target.replicas)
    return Stopped(target.id, target.name, now, target.stop_timeout, started_at=target.started_at)


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
    replica count); the record then keeps exactly what is still down (a target that could not be
    looked at, or not started, whatever the error) and is removed once nothing is.

    The caller holds the cycle's lock, or runs inside the certbot run of the cycle that holds it.
    """
    return _restore(state_dir, control)[0]


def _restore(state_dir: Path, control: TargetControl) -> tuple[list[str], list[Stopped]]:
    """restore(): the names of the targets started, and the entries of what is still down."""
    entries = read_record(state_dir)
    if not entries:
        return [], []
    todo: list[Target] = []
    unknown: set[str] = set()
    for entry in entries:
        try:
            current = _settled(entry, control)
        except Exception as error:  # noqa: BLE001 (every entry is tried; failure() reports a bug)
            logger.error("could not look at {}", failure(entry.title, error))
            unknown.add(entry.id)
            continue
        if should_restore(entry, current) and current is not None:
            todo.append(dataclasses.replace(current, replicas=entry.replicas or current.replicas))
        elif why := left_alone(entry, current):
            logger.warning("{}", why)
    if todo:
        logger.info("starting {}", ", ".join(t.title for t in todo))
    started: list[str] = []

    def start(target: Target) -> None:
        try:
            control.start(target)
        except NotReadyError:  # the engine accepted the start: the record is done with it
            started.append(target.id)
            raise
        started.append(target.id)

    for line in each(start, todo):
        logger.error("could not start {}", line)
    # only what is still down stays recorded (a service we scaled up again would look scaled by
    # someone else)
    down = unknown | ({t.id for t in todo} - set(started))
    still = [e for e in entries if e.id in down]
    _keep(state_dir, still)
    return [t.name for t in todo], still


def _keep(state_dir: Path, entries: list[Stopped]) -> None:
    """The record rewritten with `entries`, or removed when there are none. A volume that refuses
    the write (remounted read-only) gets a warning: an entry whose target runs now is harmless,
    since a running target is never started again."""
    try:
        if entries:
            _write(state_dir, "not started again yet", entries)
        else:
            (state_dir / RECORD).unlink(missing_ok=True)
    except OSError as error:
        logger.warning(
            "could not update the record of stopped targets {} ({}); what runs now is not started "
            "again next time",
            state_dir / RECORD,
            error.strerror or error,
        )


def restore_left(state_dir: Path, control: TargetControl) -> list[str]:
    """At the start of a cycle (under its lock): start what an interrupted run left stopped."""
    if left := restore(state_dir, control):
        logger.warning("started {} again: an earlier run had left them stopped", ", ".join(left))
    return left


def _not_restored(error: Exception) -> None:
    """A restore that raised (the lock, the volume, a bug: failure() logs its traceback) is
    reported, never passed on: nothing may keep the daemon from starting the app later."""
    logger.error("could not start {}", failure("the targets the sidecar stopped", error))


@contextlib.contextmanager
def cycle_lock(state_dir: Path, control: TargetControl) -> Iterator[None]:
    """The cycle's lock (LockedError when it is held). Whatever happens under it, what the record
    names is started before it is released: a restore skipped because the lock is held counts on
    its holder doing it."""
    with exclusive_lock(state_dir / LOCK):
        try:
            yield
        finally:
            try:
                if read_record(state_dir):
                    restore(state_dir, control)
            except Exception as error:  # noqa: BLE001 (what the body raised goes on)
                _not_restored(error)


def restore_held(state_dir: Path, make_control: Callable[[], TargetControl]) -> list[str]:
    """For a holder of the cycle's lock that runs no cycle (`sidecar adopt`), before it releases
    it: start what the record names. The control is made only when there is a record; one that
    cannot be made (the Docker API unreachable) is reported, the record left to the next cycle."""
    if not read_record(state_dir):
        return []
    try:
        control = make_control()
    except SidecarError as error:
        logger.error(
            "the record of stopped targets {} could not be acted on ({}): the daemon's next "
            "cycle starts what it names",
            state_dir / RECORD,
            error,
        )
        return []
    try:
        return restore_left(state_dir, control)
    except Exception as error:  # noqa: BLE001
        _not_restored(error)
        return []


@contextlib.contextmanager
def _unless_a_cycle_runs(state_dir: Path) -> Iterator[bool]:
    """The cycle's lock, if free: a running cycle's record is that cycle's to restore (its app
    may be stopped for a challenge right now; it restores before it lets the lock go)."""
    lock = exclusive_lock(state_dir / LOCK)
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
    """Outside a cycle (the sidecar starting, or woken by a record no cycle holds): restore_left,
    unless a cycle runs meanwhile. Never raises: nothing else may keep the app down."""
    if not (state_dir / RECORD).exists():
        return []  # the usual start: not even the lock is touched
    try:
        with _unless_a_cycle_runs(state_dir) as free:
            return restore_left(state_dir, control) if free else []
    except Exception as error:  # noqa: BLE001
        _not_restored(error)
        return []


def settle(state_dir: Path, control: TargetControl) -> list[str]:
    """After a cycle: try to start what the record names; what is still down because of us
    (nothing once all of it runs, or when another cycle now owns the record). Never raises."""
    if not (state_dir / RECORD).exists():
        return []
    try:
        with _unless_a_cycle_runs(state_dir) as free:
            if not free:
                return []
            _, still = _restore(state_dir, control)
            return [entry.title for entry in still]
    except Exception as error:  # noqa: BLE001
        _not_restored(error)
        return [entry.title for entry in read_record(state_dir)]
