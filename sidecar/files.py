"""Small file helpers: atomic JSON writes on the shared volume, and the cycle lock."""

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


def write_json(path: Path, data: Any) -> None:  # noqa: ANN401
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def read_json(path: Path) -> Any:  # noqa: ANN401
    """The file's data, None when it does not exist, ConfigError when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} is unreadable: {error}") from None


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """One cycle at a time, across processes and containers sharing the volume."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another renewal cycle is running (lock {path} is held); this one is skipped"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
