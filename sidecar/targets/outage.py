"""The record of the targets the sidecar stopped, so that they are always started again.

It is written (atomically, on the shared volume) before anything is stopped, and cleared only once
every target it names has been seen stopped and started again. Whoever finds it — certbot's
process after the renewal, the post-hook, the cycle after certbot exits, the sidecar starting
after a crash, the idle daemon noticing a record no cycle holds, whoever holds the cycle's lock
before releasing it — starts what it names, unless someone else started or removed it since.
Each kind of target keeps its own entry and its own rules (`container.StoppedContainer`,
`service.StoppedService`); entries written by earlier versions are read as they were meant.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, cast

from loguru import logger
from pydantic import Discriminator, Tag, TypeAdapter

from sidecar.errors import ConfigError, LockedError, NotReadyError, SidecarError
from sidecar.targets.base import Stopped, Target, TargetControl, each, failure
from sidecar.targets.container import StoppedContainer
from sidecar.targets.service import StoppedService
from sidecar.volume.certs import now_utc
from sidecar.volume.files import exclusive_lock, read_json, read_store, write_store
from sidecar.volume.watch import LOCK, RECORD

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

__all__ = ["RECORD", "cycle_lock", "read_record", "recover", "restore", "settle"]


def _kind(entry: object) -> str:
    """Which kind an entry is: its `kind` (an entry without one is a container's)."""
    if isinstance(entry, dict):
        return str(entry.get("kind", StoppedContainer.KIND))
    return str(getattr(entry, "KIND", StoppedContainer.KIND))


# The kinds of entry; a new kind of target adds its own here.
Entry = Annotated[
    Annotated[StoppedContainer, Tag(StoppedContainer.KIND)]
    | Annotated[StoppedService, Tag(StoppedService.KIND)],
    Discriminator(_kind),
]


@dataclass(frozen=True, slots=True)
class Record:
    """`sidecar/stopped.json`: why, and what is stopped."""

    targets: tuple[Entry, ...] = ()
    reason: str = ""


STORE = TypeAdapter(Record)  # the file's one schema, both ways


def read_record(state_dir: Path) -> list[StoppedContainer | StoppedService]:
    """What the record names; an unreadable record is moved aside and reported."""
    path = state_dir / RECORD
    try:
        data = read_json(path) or {}
        if isinstance(data, dict) and "targets" not in data:  # written before services existed
            data = {**data, "targets": data.pop("containers", [])}
        return list(read_store(path, STORE, data).targets)
    except ConfigError as error:
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


def _write(state_dir: Path, reason: str, entries: Sequence[Stopped]) -> None:
    """The record, synced to disk with its directory before this returns (before any stop)."""
    kinds = cast("tuple[Entry, ...]", tuple(entries))  # each target's `stopped` makes one of them
    write_store(state_dir / RECORD, STORE, Record(kinds, reason), exclude_none=True)


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
    entries = [t.stopped(now) for t in fresh]
    _write(state_dir, reason, [*older, *entries])
    logger.info("stopping {} for {}", ", ".join(t.title for t in fresh), reason)
    errors = each(control.stop, fresh)
    for error in errors:
        logger.error("could not stop {}", error)
    done = [e.at_zero(control) for e in entries]  # what only the stop tells (a service's version)
    if done != entries:
        _write(state_dir, reason, [*older, *done])
    return [t.name for t in fresh]


def restore(state_dir: Path, control: TargetControl) -> list[str]:
    """Start every recorded target that is still down because of us (a service with its recorded
    replica count); the record then keeps exactly what is still down (a target that could not be
    looked at, or not started, whatever the error) and is removed once nothing is.

    The caller holds the cycle's lock, or runs inside the certbot run of the cycle that holds it.
    """
    return _restore(state_dir, control)[0]


def _restore(
    state_dir: Path, control: TargetControl
) -> tuple[list[str], list[StoppedContainer | StoppedService]]:
    """restore(): the names of the targets started, and the entries of what is still down."""
    entries = read_record(state_dir)
    if not entries:
        return [], []
    todo: list[Target] = []
    unknown: set[str] = set()
    for entry in entries:
        try:
            look = entry.look(control)
        except Exception as error:  # noqa: BLE001 (every entry is tried; failure() reports a bug)
            logger.error("could not look at {}", failure(entry.title, error))
            unknown.add(entry.id)
            continue
        if look.start is not None:
            todo.append(look.start)
        elif look.left_alone:
            logger.warning("{}", look.left_alone)
    if todo:
        logger.info("starting {}", ", ".join(t.title for t in todo))
    started = _start_all(control, todo)
    # only what is still down stays recorded (a service we scaled up again would look scaled by
    # someone else)
    down = unknown | ({t.id for t in todo} - started)
    still = [e for e in entries if e.id in down]
    _keep(state_dir, still)
    return [t.name for t in todo], still


def _start_all(control: TargetControl, todo: Sequence[Target]) -> set[str]:
    """Start every one of `todo` at once; the ids the engine accepted a start of."""
    started: set[str] = set()

    def start(target: Target) -> None:
        try:
            control.start(target)
        except NotReadyError:  # the engine accepted the start: the record is done with it
            started.add(target.id)
            raise
        started.add(target.id)

    for line in each(start, todo):
        logger.error("could not start {}", line)
    return started


def _keep(state_dir: Path, entries: Sequence[Stopped]) -> None:
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
