"""The lineages of the tree: their names, and their current certificates (the one reader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.errors import ConfigError
from sidecar.volume.certs import CertInfo, parse_cert
from sidecar.volume.confs import lineage_paths

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable


def names(config_dir: Path) -> list[str]:
    """Every lineage certbot knows in this tree (its renewal confs), configured or not."""
    renewal = config_dir / "renewal"
    return sorted(p.stem for p in renewal.glob("*.conf")) if renewal.is_dir() else []


def rebase(saved: str, kind: str, config_dir: str) -> str | None:
    """The same `live/...` or `archive/...` path under `config_dir` (`kind` is `live` or
    `archive`), for a path saved in a tree made elsewhere (`C:\\Certbot\\live\\x\\cert.pem` too)."""
    parts = PurePosixPath(saved.replace("\\", "/")).parts
    if kind not in parts[:-1]:
        return None
    at = len(parts) - 1 - parts[::-1].index(kind)
    return str(PurePosixPath(config_dir, *parts[at:]))


def in_tree(config_dir: Path, saved: str | None, kind: str) -> Path | None:
    """A path a conf saved, as it is found in this tree: itself, or the same `live/...` or
    `archive/...` path under this config dir (a tree made under another directory)."""
    if not saved:
        return None
    for candidate in (saved, rebase(saved, kind, str(config_dir))):
        if candidate and (Path(candidate).exists() or Path(candidate).is_symlink()):
            return Path(candidate)
    return None


def live_dir(config_dir: Path, name: str) -> Path:
    """Where certbot finds lineage `name`'s files: the directory of its conf's `cert` path
    (a renamed conf names another `live/` directory; where it is gone, the same path in this
    tree), else `live/NAME`."""
    saved = lineage_paths(config_dir / "renewal" / f"{name}.conf").get("cert")
    cert = in_tree(config_dir, saved, "live")
    if cert is None and saved and (gone := rebase(saved, "live", str(config_dir))):
        cert = Path(gone)
    return cert.parent if cert is not None else config_dir / "live" / name


def archive_dir(config_dir: Path, name: str) -> Path:
    """Where certbot writes lineage `name`'s new files: its conf's `archive_dir` (found in this
    tree), else certbot's default `archive/NAME`."""
    saved = lineage_paths(config_dir / "renewal" / f"{name}.conf").get("archive_dir")
    return in_tree(config_dir, saved, "archive") or config_dir / "archive" / name


@dataclass(frozen=True, slots=True)
class Current:
    """A lineage's current certificate; `problem` says why it cannot be read (None: it has none
    yet, or it was read)."""

    cert: CertInfo | None
    problem: str | None = None


def read(config_dir: Path, name: str) -> Current:
    path = live_dir(config_dir, name) / "cert.pem"
    if not path.exists():
        if path.is_symlink():
            return Current(None, f"{path} is a broken symlink (is the whole volume mounted?)")
        return Current(None)
    try:
        return Current(parse_cert(path.read_bytes()))
    except (OSError, ValueError) as error:
        return Current(None, f"{path} is not a readable certificate: {error}")


def read_strict(config_dir: Path, name: str) -> CertInfo | None:
    """The current certificate, None if there is none yet, ConfigError if it cannot be read."""
    current = read(config_dir, name)
    if current.problem:
        raise ConfigError(current.problem)
    return current.cert


@dataclass(frozen=True, slots=True)
class Pems:
    """A lineage's current certificate and the exact bytes an app is given for it: `cert` is
    the leaf of `fullchain` (the same certificate as `cert.pem`)."""

    cert: CertInfo
    fullchain: bytes = field(repr=False)
    privkey: bytes = field(repr=False)  # never in a log line


def read_pems(config_dir: Path, name: str) -> Pems | None:
    """The current certificate with its full chain and key, all from the lineage's live
    directory (`live_dir`: a renamed conf names another one); None if it has no certificate
    yet; ConfigError naming the file if they cannot be read or the full chain's leaf is another
    certificate than `cert.pem`."""
    cert = read_strict(config_dir, name)
    if cert is None:
        return None
    live = live_dir(config_dir, name)
    try:
        fullchain = (live / "fullchain.pem").read_bytes()
        privkey = (live / "privkey.pem").read_bytes()
        leaf = parse_cert(fullchain)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{live}: the full chain or key cannot be read: {error}") from error
    if leaf.serial != cert.serial:
        raise ConfigError(
            f"{live / 'fullchain.pem'} begins with another certificate (serial "
            f"{leaf.serial_hex}) than cert.pem (serial {cert.serial_hex})"
        )
    return Pems(leaf, fullchain, privkey)


def certs(config_dir: Path, lineages: Iterable[str]) -> dict[str, CertInfo | None]:
    """Per lineage its current certificate; one that cannot be read counts as none."""
    return {name: read(config_dir, name).cert for name in lineages}


def snapshot(
    config_dir: Path, lineages: Iterable[str], strict: Collection[str] | None = None
) -> dict[str, CertInfo | None]:
    """Current certificate per lineage. A broken one raises ConfigError if it is in `strict`
    (default: all); otherwise it is reported and counted as having none, so one broken old
    lineage does not stop the renewal of the others."""
    out: dict[str, CertInfo | None] = {}
    for name in lineages:
        current = read(config_dir, name)
        if current.problem and (strict is None or name in strict):
            raise ConfigError(current.problem)
        if current.problem:
            logger.warning("{} (lineage {} is skipped)", current.problem, name)
        out[name] = current.cert
    return out


def written_at(config_dir: Path, name: str) -> datetime:
    """When the lineage's current certificate was written."""
    path = (live_dir(config_dir, name) / "cert.pem").resolve()
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
