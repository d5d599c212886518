"""certbot's renewal confs (`renewal/NAME.conf`, configobj INI): reading them, and changing them
only through edits that leave a timestamped backup beside the conf."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import configobj

from sidecar.errors import ConfigError
from sidecar.volume.files import write_atomic

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

AUTHENTICATOR = "sidecar"  # the sidecar's certbot plugin (authenticator and installer)
INSTALLER = AUTHENTICATOR
POST_HOOK = "sidecar hook post"
PARAMS = "renewalparams"
TOP = ""
BACKUP = ".sidecar-backup-"  # renewal/NAME.conf.sidecar-backup-20250312T101500Z (not *.conf)


@dataclass(frozen=True, slots=True)
class Edit:
    """One change to a renewal conf: `section` is TOP or PARAMS; `comment` goes above the key."""

    section: str
    key: str
    value: str | None  # None removes the key
    why: str
    comment: str | None = None

    def describe(self, old: object) -> str:
        where = self.key
        if self.value is None:
            return f"{where} {quote(old)} removed: {self.why}"
        if old is None:
            return f"{where} = {quote(self.value)} added: {self.why}"
        return f"{where} {quote(old)} -> {quote(self.value)}: {self.why}"


def quote(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return f"'{value}'" if isinstance(value, str) and " " in value else str(value)


def _parse(path: Path) -> Any:  # noqa: ANN401 (configobj has no types)
    """The conf as certbot parses it (configobj, UTF-8), or ConfigError naming the file."""
    try:
        return configobj.ConfigObj(
            str(path), encoding="utf-8", default_encoding="utf-8", file_error=True
        )
    except UnicodeDecodeError as error:
        raise ConfigError(_not_utf8(path, error)) from None
    except (OSError, configobj.ConfigObjError) as error:
        raise ConfigError(f"{path} is not a renewal conf certbot can read: {error}") from None


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """certbot reads confs as UTF-8 and skips one that is not ("produced an unexpected error")."""
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    start = data.find(error.object)
    where = error.start + max(start, 0)
    line = data[:where].count(b"\n") + 1
    byte = data[where : where + 1].hex() or "?"
    return (
        f"{path} is not UTF-8 (byte 0x{byte} on line {line}): certbot cannot read it and skips "
        "the lineage; save it as UTF-8 (`iconv -f latin1 -t utf-8`, or re-type that line)"
    )


def load_conf(path: Path) -> Any:  # noqa: ANN401 (configobj has no types)
    """The parsed conf, or ConfigError naming the file when certbot could not parse it either."""
    conf = _parse(path)
    if PARAMS not in conf:
        raise ConfigError(f"{path} has no [renewalparams] section; certbot cannot renew it")
    return conf


def load_text(data: bytes) -> Any:  # noqa: ANN401 (configobj has no types)
    """A conf not on disk yet (one the sidecar is about to write), parsed as `load_conf` does."""
    return configobj.ConfigObj(
        data.decode("utf-8").splitlines(), encoding="utf-8", default_encoding="utf-8"
    )


def render(top: Mapping[str, str], params: Mapping[str, str]) -> bytes:
    """A new renewal conf as certbot writes one (`storage.make_renewal_configobj`): the top-level
    values, then `[renewalparams]`, no comments."""
    conf = configobj.ConfigObj(encoding="utf-8", default_encoding="utf-8")
    conf.update(top)
    conf[PARAMS] = dict(params)
    return _bytes(conf)


def create(path: Path, data: bytes, edits: Sequence[Edit]) -> None:
    """Write a new conf (`data` with `edits` applied) where none is, 0644 as certbot's are;
    ConfigError when one appeared meanwhile (it is never replaced)."""
    if path.exists():
        raise ConfigError(f"{path} exists: it is not replaced")
    conf = load_text(data)
    for item in edits:
        _apply(conf, item)
    write_atomic(path, _bytes(conf), mode=0o644)


def lineage_paths(path: Path) -> dict[str, str]:
    """The conf's top-level file paths (`cert`, `archive_dir`, ...); {} when it cannot be read."""
    try:
        conf = _parse(path)
    except ConfigError:
        return {}
    return {k: v for k, v in conf.items() if isinstance(v, str)}


def _save(conf: Any, path: Path) -> None:  # noqa: ANN401
    """Write a conf loaded with `load_conf` back in certbot's format (comments kept), atomically,
    keeping the file's mode (certbot's confs are 0644 under a 0755 dir)."""
    write_atomic(path, _bytes(conf))


def _bytes(conf: Any) -> bytes:  # noqa: ANN401
    buffer = io.BytesIO()
    conf.write(buffer)
    return buffer.getvalue()


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + BACKUP + "*"))


def _backup(path: Path, stamp: str) -> Path:
    target = path.with_name(path.name + BACKUP + stamp)
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{BACKUP}{stamp}-{n}")
    shutil.copy2(path, target)
    return target


def _apply(conf: Any, edit: Edit) -> None:  # noqa: ANN401 (configobj)
    section = conf if edit.section == TOP else conf[edit.section]
    if edit.value is None:
        if edit.key in section:
            del section[edit.key]
        return
    section[edit.key] = edit.value
    if edit.comment:
        section.comments[edit.key] = [edit.comment]


def edit(path: Path, edits: Sequence[Edit], stamp: str) -> Path:
    """Apply `edits` to the conf at `path` after copying it to a backup; returns the backup.

    On failure (OSError, ConfigError) the conf is unchanged and no backup is left.
    """
    conf = load_conf(path)
    for item in edits:
        _apply(conf, item)
    backup = _backup(path, stamp)
    try:
        _save(conf, path)
    except BaseException:
        backup.unlink(missing_ok=True)
        raise
    return backup
