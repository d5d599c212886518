"""The guard's settings, read from its own environment: where it listens, where the engine is,
and the targets (APP_CONTAINERS, APP_SERVICES, APP_LABEL: the same variables and rules as the
sidecar's, so both are given the same values). Standard library only: the guard stays small."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar.errors import ConfigError
from sidecar.targets.spec import TargetsSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_SOCKET = "/run/guard/docker.sock"
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_LABEL = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_./-]*(=.*)?$")
_MAX_CONNECTIONS = "GUARD_MAX_CONNECTIONS"


@dataclass(frozen=True, slots=True)
class GuardSpec:
    """Where the guard listens (GUARD_SOCKET), the engine's socket (DOCKER_HOST), the targets,
    and its limits: connections at once (GUARD_MAX_CONNECTIONS), a request's head and body."""

    listen: Path
    engine: Path
    targets: TargetsSpec
    max_connections: int = 32
    max_head: int = 64 * 1024
    max_body: int = 2 * 1024 * 1024  # a secret (at most 500 KiB) in base64 in JSON, with room


def read(environ: Mapping[str, str]) -> GuardSpec:
    """The settings, or ConfigError naming the variable and the rule."""
    targets = TargetsSpec(
        containers=_names(environ, "APP_CONTAINERS"),
        services=_names(environ, "APP_SERVICES"),
        label=_label(environ.get("APP_LABEL", "")),
    )
    if not (targets.containers or targets.services or targets.label):
        raise ConfigError(
            "APP_CONTAINERS, APP_SERVICES or APP_LABEL: set at least one to name the app "
            "(the guard lets changes through for it only)"
        )
    return GuardSpec(
        listen=Path(environ.get("GUARD_SOCKET", "").strip() or DEFAULT_SOCKET),
        engine=_engine(environ.get("DOCKER_HOST", "").strip() or DEFAULT_ENGINE),
        targets=targets,
        max_connections=_count(environ.get(_MAX_CONNECTIONS, "").strip() or "32"),
    )


def _names(environ: Mapping[str, str], variable: str) -> tuple[str, ...]:
    listed = [n.strip() for n in environ.get(variable, "").split(",") if n.strip()]
    if bad := [n for n in listed if not _NAME.match(n)]:
        raise ConfigError(f"{variable}: {bad[0]!r} is not a valid name")
    return tuple(n.lstrip("/") for n in listed)


def _label(raw: str) -> str | None:
    if raw.strip() and not _LABEL.match(raw.strip()):
        raise ConfigError(f"APP_LABEL: {raw!r} is not a label selector (key or key=value)")
    return raw.strip() or None


def _engine(raw: str) -> Path:
    scheme, sep, path = raw.partition("://")
    if not sep or scheme != "unix" or not path.startswith("/"):
        raise ConfigError(
            f"DOCKER_HOST: {raw!r}: the guard reaches the engine through its socket "
            "(unix:///PATH, default unix:///var/run/docker.sock)"
        )
    return Path(path)


def _count(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{_MAX_CONNECTIONS}: {raw!r} is not a whole number above 0")
    return int(raw)
