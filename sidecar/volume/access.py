"""Owner, group and mode of the files a non-root app reads (FILES_UID, FILES_GID, FILES_PERMS),
and the optional combined PEM (private key + full chain, COMBINED_PEM).

certbot keeps `live/` and `archive/` at 0700 and private keys at 0600, owned by root: only root
can read them. With these settings, every lineage's files get the app's owner/group, certificates
FILES_PERMS, private keys FILES_PERMS without any bit for others (and without group bits unless
FILES_GID is set), and the directories on the way just the search (x) bit the app needs. Applied
before the app is started again after every issuance and renewal (the post-hook), and at every
cycle; only what differs is changed, and nothing is ever made readable by others that holds a key.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.volume import lineages
from sidecar.volume.files import write_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.volume.specs import Domains

COMBINED = "combined.pem"
DEFAULT_PERMS = 0o644
GROUP_PERMS = 0o640
KEY_MAX = 0o640  # never execute, never anything for others
Chown = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Policy:
    """What the settings ask for; `active` False means certbot's own modes are left alone."""

    uid: int | None = None
    gid: int | None = None
    perms: int | None = None
    combined: bool = False

    @property
    def active(self) -> bool:
        return self.uid is not None or self.gid is not None or self.perms is not None

    @property
    def cert_mode(self) -> int:
        """FILES_PERMS; by default 0640 when a group is given (the app's), else 0644."""
        if self.perms is not None:
            return self.perms
        return GROUP_PERMS if self.gid is not None else DEFAULT_PERMS

    @property
    def key_mode(self) -> int:
        """FILES_PERMS for a private key: owner and (with FILES_GID) group bits only."""
        allowed = KEY_MAX if self.gid is not None else 0o600
        return (self.cert_mode & allowed) | 0o400

    @property
    def dir_bits(self) -> int:
        """The search bits the app needs on live/, archive/ and their lineage directories."""
        bits = 0
        if self.gid is not None:
            bits |= stat.S_IXGRP
        if (self.uid is not None and self.gid is None) or self.cert_mode & 0o004:
            bits |= stat.S_IXOTH
        return bits


def is_key(path: Path) -> bool:
    return path.name.startswith("privkey") or path.name == COMBINED


def _set(path: Path, mode: int, policy: Policy, chown: Chown, changed: list[str]) -> None:
    info = path.lstat()
    uid = policy.uid if policy.uid is not None and info.st_uid != policy.uid else -1
    gid = policy.gid if policy.gid is not None and info.st_gid != policy.gid else -1
    if uid != -1 or gid != -1:
        chown(str(path), uid, gid)
        changed.append(f"{path.name} owner")
    if stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)
        changed.append(f"{path.name} {mode:04o}")


def _dir(path: Path, policy: Policy, chown: Chown, changed: list[str]) -> None:
    """Add the search bits (never remove any); the group becomes FILES_GID's, the owner stays."""
    info = path.stat()
    if policy.gid is not None and info.st_gid != policy.gid:
        chown(str(path), -1, policy.gid)
        changed.append(f"{path.name}/ group")
    mode = stat.S_IMODE(info.st_mode)
    if mode | policy.dir_bits != mode:
        path.chmod(mode | policy.dir_bits)
        changed.append(f"{path.name}/ {mode | policy.dir_bits:04o}")


def inside(path: Path, root: Path) -> bool:
    """`path` resolves (symlinks followed) to somewhere below `root`, resolved too."""
    try:
        real, top = path.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return False
    return real != top and real.is_relative_to(top)


def strays(config_dir: Path, name: str) -> dict[str, Path]:
    """The lineage's `live` and `archive` directories (as its conf names them) that exist but
    resolve outside the tree's `live/` and `archive/` (a conf's `archive_dir` pointed at
    `accounts/...`, a symlink out of the tree): FILES_* never touches them."""
    found = {"live": lineages.live_dir(config_dir, name)}
    found["archive"] = lineages.archive_dir(config_dir, name)
    return {
        kind: path
        for kind, path in found.items()
        if path.exists()
        and not (inside(config_dir / kind, config_dir) and inside(path, config_dir / kind))
    }


def apply_lineage(
    config_dir: Path, name: str, policy: Policy, *, chown: Chown = os.lchown
) -> list[str]:
    """Make lineage `name`'s files what the policy says; returns what changed. Only where
    certificates live: nothing when its directories resolve outside the tree's `live/` and
    `archive/`; every path is resolved before it is changed (never a change through a link)."""
    changed: list[str] = []
    live = lineages.live_dir(config_dir, name)
    if not live.is_dir() or strays(config_dir, name):
        return changed
    live, archive = live.resolve(), lineages.archive_dir(config_dir, name).resolve()
    if policy.combined:
        _write_combined(live, policy, changed)
    if not policy.active:
        return changed
    tops = ((config_dir / "live").resolve(), (config_dir / "archive").resolve())
    for folder in (*tops, live, archive):
        if folder.is_dir():
            _dir(folder, policy, chown, changed)
    files = sorted(archive.iterdir()) if archive.is_dir() else []
    combined = live / COMBINED
    for path in [*files, *([combined] if combined.is_file() else [])]:
        if path.is_symlink() or not path.is_file():
            continue  # a reused key is a symlink to an earlier privkeyN.pem
        _set(path, policy.key_mode if is_key(path) else policy.cert_mode, policy, chown, changed)
    return changed


def _write_combined(live: Path, policy: Policy, changed: list[str]) -> None:
    """live/NAME/combined.pem = privkey.pem + fullchain.pem, replaced atomically when it differs."""
    try:
        data = (live / "privkey.pem").read_bytes() + (live / "fullchain.pem").read_bytes()
    except OSError as error:
        logger.warning("cannot build {}/{}: {}", live.name, COMBINED, error)
        return
    target = live / COMBINED
    with contextlib.suppress(OSError):
        if target.read_bytes() == data:
            return
    write_atomic(target, data, mode=policy.key_mode if policy.active else 0o600)  # owner: below
    changed.append(f"{COMBINED} written")


def lineages_for(config_dir: Path, domains: Domains) -> list[str]:
    """The lineages whose files the app may read: every renewal conf not in IGNORE_LINEAGES."""
    return [n for n in lineages.names(config_dir) if domains.renewed_here(n)]


def apply(
    config_dir: Path, domains: Domains, policy: Policy, *, chown: Chown = os.chown
) -> dict[str, list[str]]:
    """Apply the policy to every lineage; logs and returns what changed (lineage -> changes)."""
    if not (policy.active or policy.combined):
        return {}
    done = {}
    for name in lineages_for(config_dir, domains):
        if changed := apply_lineage(config_dir, name, policy, chown=chown):
            done[name] = changed
            logger.info("files of {}: {}", name, ", ".join(changed), certificate=name)
    return done


def apply_safely(config_dir: Path, domains: Domains, policy: Policy) -> None:
    """`apply` where a failure must not stop what follows (the app is started right after)."""
    try:
        apply(config_dir, domains, policy)
    except OSError as error:
        logger.error("could not set owner/mode of the certificate files: {}", error)
