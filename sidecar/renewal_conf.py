"""certbot's renewal confs (`renewal/NAME.conf`, configobj INI): read, and set one top-level key."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import configobj

from sidecar.errors import ConfigError


def load_conf(path: Path) -> Any:  # noqa: ANN401 (configobj has no types)
    """The parsed conf, or ConfigError naming the file when certbot could not parse it either."""
    try:
        conf = configobj.ConfigObj(
            str(path), encoding="utf-8", default_encoding="utf-8", file_error=True
        )
    except (OSError, configobj.ConfigObjError) as error:
        raise ConfigError(f"{path} is not a renewal conf certbot can read: {error}") from None
    if "renewalparams" not in conf:
        raise ConfigError(f"{path} has no [renewalparams] section; certbot cannot renew it")
    return conf


def set_renew_before_expiry(path: Path, seconds: float | None) -> bool:
    """Make `renew_before_expiry` say `seconds` (certbot reads it nowhere else); True if changed."""
    if seconds is None:
        return False
    conf = load_conf(path)
    value = f"{int(seconds)} seconds"
    if conf.get("renew_before_expiry") == value:
        return False
    conf["renew_before_expiry"] = value
    _write(conf, path)
    return True


def save_conf(conf: Any, path: Path) -> None:  # noqa: ANN401
    """Write a conf loaded with `load_conf` back in certbot's format (comments kept), atomically."""
    _write(conf, path)


def _write(conf: Any, path: Path) -> None:  # noqa: ANN401
    """Atomically, keeping the file's mode (certbot's confs are 0644 under a 0755 dir)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            conf.write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(path.stat().st_mode & 0o777)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
