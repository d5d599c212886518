"""The state dir's two markers, read with the standard library only (the idle sleeper imports
this module, and must stay small): the record of the targets the sidecar stopped, and the cycle's
lock. A record that exists while nobody holds the lock was left by a run that died (SIGKILL, OOM)
before it started the app again: nothing but the daemon will start it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from os import PathLike

RECORD = "stopped.json"  # what the sidecar stopped (sidecar.targets.outage writes it)
LOCK = "lock"  # held by a cycle, and by whatever else restores what the record names
WATCH_EVERY = 2.0  # seconds between two looks of the idle daemon


def open_lock(path: str | PathLike[str]) -> int | None:
    """A descriptor on the lock file to flock: created if need be, opened read-only where it
    cannot be written (a volume remounted read-only: flock works on a read-only descriptor);
    None when it does not exist and cannot be created."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None


def lock_free(path: str | PathLike[str]) -> bool:
    """Nobody holds the lock (probed with a lock taken and released at once, read-only)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # never taken on this volume
    except OSError:
        return False  # cannot tell: leave it to a cycle
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def unattended(state_dir: str | PathLike[str]) -> bool:
    """A record of stopped targets that no cycle holds: one stat, and a lock probe only then."""
    # os.path, not pathlib: importing pathlib would add a megabyte to the idle sleeper
    record, lock = os.path.join(state_dir, RECORD), os.path.join(state_dir, LOCK)  # noqa: PTH118
    return os.path.exists(record) and lock_free(lock)  # noqa: PTH110
