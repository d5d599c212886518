"""Writing on the shared volume: the one atomic write, JSON on top of it, and the locks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.errors import ConfigError, LockedError

if TYPE_CHECKING:
    from collections.abc import Iterator


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data`: a crash leaves the old file or the new one, never half of one.

    `mode` defaults to the mode of the file replaced (0600 for a new one).
    """
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


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool = False) -> Iterator[None]:
    """Across processes and containers sharing the volume: one holder at a time.

    Without `wait`, a held lock raises LockedError at once (a cycle is skipped, not queued).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockedError(
                f"another renewal cycle is running (lock {path} is held); this one is skipped"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
