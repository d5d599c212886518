"""Writing on the shared volume: the one atomic write, JSON on top of it, and the locks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from loguru import logger
from pydantic import PlainSerializer, TypeAdapter, ValidationError

from sidecar.errors import ConfigError, LockedError
from sidecar.volume.watch import open_lock

if TYPE_CHECKING:
    from collections.abc import Iterator

T = TypeVar("T")
# A time in a file on the volume: ISO 8601 as `datetime.isoformat` writes it (`+00:00`, not `Z`).
Stamp = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data`: a crash leaves the old file or the new one, never half of one,
    and once it returns the new one survives a power loss (file and directory are synced: the
    record of stopped targets must outlive the stop it precedes).

    `mode` defaults to the mode of the file replaced (0600 for a new one).
    """
    created = not path.parent.is_dir()
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    _sync_dir(path.parent)  # the rename itself
    if created:
        _sync_dir(path.parent.parent)  # the new directory's entry


def _sync_dir(directory: Path) -> None:
    """fsync a directory; a file system that refuses it (some network ones) is left as it is."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path, data: Any) -> None:  # noqa: ANN401
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    write_atomic(path, text.encode())


def read_json(path: Path) -> Any:  # noqa: ANN401
    """The file's data, None when it does not exist, ConfigError when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} is unreadable: {error}") from None


def write_store(path: Path, store: TypeAdapter[T], value: T, *, exclude_none: bool = False) -> None:
    """`value` written to `path` as its type's JSON (atomically, see write_json)."""
    write_json(path, store.dump_python(value, mode="json", exclude_none=exclude_none))


def read_store(path: Path, store: TypeAdapter[T], data: object) -> T:
    """`data` (the JSON read from `path`) as the store's type; ConfigError naming the file and
    the first thing wrong with it."""
    try:
        return store.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path} is unreadable: {where or 'the file'}: {first['msg']}") from None


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool = False) -> Iterator[None]:
    """Across processes and containers sharing the volume: one holder at a time.

    Without `wait`, a held lock raises LockedError at once (a cycle is skipped, not queued). On a
    read-only volume the existing lock file is locked all the same (the start of the app left
    stopped needs no write); where it does not exist and cannot be made, nothing is locked.
    """
    with contextlib.suppress(OSError):  # read-only: the directory is there, or nothing is
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_lock(path)
    if fd is None:
        logger.debug("no lock file {} and none can be made: going on without the lock", path)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockedError(
                f"another renewal cycle is running (lock {path} is held); this one is skipped"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def others_may_read(path: Path) -> str | None:
    """Why a secret file is refused: any permission for other users (certbot itself only warns),
    or None."""
    mode = path.stat().st_mode & 0o777
    if not mode & 0o007:
        return None
    return (
        f"{str(path)!r} is open to other users (mode {mode:04o}); make it 0600 "
        "(chmod 600, or mode: 0400 for a Docker secret)"
    )
