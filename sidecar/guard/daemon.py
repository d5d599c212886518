"""`sidecar guard`: read the settings, serve the filtered socket until a stop signal;
`sidecar guard check`: its healthcheck."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from sidecar.errors import ConfigError
from sidecar.guard import config
from sidecar.guard.server import GuardServer, log
from sidecar.guard.upstream import EngineLook, pings

if TYPE_CHECKING:
    from pathlib import Path

    from sidecar.shutdown import StopRequest

EXIT_CONFIG = 2
SOCKET_MODE = 0o660


def main(stopping: StopRequest) -> int:
    """Serve until a stop signal; 2 with one line on bad settings."""
    try:
        spec = config.read(os.environ)
        server = _listen(spec)
    except (ConfigError, OSError) as error:
        log(f"invalid configuration: {error}")
        return EXIT_CONFIG
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    log(
        f"serving {spec.listen} for {spec.engine}: reads, and changes to the targets only "
        f"(containers {', '.join(spec.targets.containers) or '-'}, services "
        f"{', '.join(spec.targets.services) or '-'}, label {spec.targets.label or '-'})"
    )
    while not stopping.wait(3600):
        pass
    server.shutdown()
    server.server_close()
    _remove(spec.listen)
    log(f"stopped ({stopping.name})")
    return 0


def check() -> int:
    """`sidecar guard check` (the guard's healthcheck): 0 when its socket answers a ping
    through to the engine, 1 when not, 2 on bad settings."""
    try:
        spec = config.read(os.environ)
    except ConfigError as error:
        log(f"invalid configuration: {error}")
        return EXIT_CONFIG
    return 0 if pings(spec.listen) else 1


def _listen(spec: config.GuardSpec) -> GuardServer:
    """The server on GUARD_SOCKET (a socket left by an earlier run replaced)."""
    if not spec.engine.exists():
        raise ConfigError(f"DOCKER_HOST: {spec.engine} does not exist (mount the engine's socket)")
    spec.listen.parent.mkdir(parents=True, exist_ok=True)
    _remove(spec.listen)
    server = GuardServer(spec, EngineLook(spec.engine))
    spec.listen.chmod(SOCKET_MODE)
    return server


def _remove(path: Path) -> None:
    if path.is_socket():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
