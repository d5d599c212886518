"""Room to save what the CA issues: free space and inodes on the volume (CONFIG_DIR) and in
certbot's work and logs directories, checked before the app is stopped. A full volume otherwise
costs an outage and a rate-limited issuance per attempt, and leaves empty key files behind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.volume.paths import Paths

# A lineage's new files (four PEMs in archive/, a renewal conf rewritten, certbot's backup of
# it, the sidecar's journal) take well under 64 KiB; certbot's log of a run up to about 1 MiB.
NEED_BYTES = 2 * 1024 * 1024
NEED_INODES = 64


@dataclass(frozen=True, slots=True)
class Free:
    """What a directory's filesystem has free for an unprivileged writer; `inodes` None when
    the filesystem does not count them (f_files 0: btrfs, some FUSE)."""

    directory: Path
    bytes: int
    inodes: int | None


def shortage(free: Free, need_bytes: int = NEED_BYTES, need_inodes: int = NEED_INODES) -> str:
    """One line naming the directory and what is free, or "" when there is room."""
    short_bytes = free.bytes < need_bytes
    short_inodes = free.inodes is not None and free.inodes < need_inodes
    if not (short_bytes or short_inodes):
        return ""
    inodes = "" if free.inodes is None else f" and {free.inodes} inodes"
    return (
        f"{free.directory} has {_size(free.bytes)}{inodes} free, less than the "
        f"{_size(need_bytes)} and {need_inodes} inodes a renewal needs to save its files: "
        "free space on that volume"
    )


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB"
    return f"{count / 1024:.0f} KiB" if count >= 1024 else f"{count} bytes"  # noqa: PLR2004


def free_in(directory: Path) -> Free:
    """statvfs of the directory (or its nearest existing parent: certbot makes it)."""
    stat = os.statvfs(_existing(directory))
    inodes = stat.f_favail if stat.f_files else None
    return Free(directory, stat.f_bavail * stat.f_frsize, inodes)


def check_room(paths: Paths) -> list[str]:
    """One line per directory without room: the volume, certbot's work and logs directories
    (each filesystem once)."""
    lines = []
    seen: set[int] = set()
    for directory in (paths.config_dir, paths.work_dir, paths.logs_dir):
        try:
            device = _existing(directory).stat().st_dev
            free = free_in(directory)
        except OSError:
            continue  # not readable: the writability check names it
        if device in seen:
            continue
        seen.add(device)
        if line := shortage(free):
            lines.append(line)
    return lines


def _existing(directory: Path) -> Path:
    while not directory.exists() and directory.parent != directory:
        directory = directory.parent
    return directory
