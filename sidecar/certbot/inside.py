"""What runs inside certbot's process (the plugin) and as its post-hook (`sidecar hook post`):
stop the app before the challenge, start it again afterwards. Their entry points
(`sidecar.incertbot`, `sidecar.cli`) load the configuration and hand in an `InCertbot`."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from sidecar.certbot.argv import EXPECTED_ENV
from sidecar.certbot.failures import PORT_BUSY_TEXT
from sidecar.errors import SidecarError
from sidecar.targets import outage
from sidecar.targets.engine import publishers
from sidecar.volume import access

if TYPE_CHECKING:
    from sidecar.targets.base import TargetControl
    from sidecar.volume.found import TreeSpec


@dataclass(frozen=True, slots=True)
class InCertbot:
    """What stopping and starting the app need: the tree (the state dir with the record, the
    files' owner and modes) and the app's targets. Made once per certbot process: the start that
    follows the stop (in the same process, while the app is down) reuses its Docker client
    instead of reconnecting."""

    tree: TreeSpec
    control: TargetControl


@dataclass(slots=True)
class Renewals:
    """The renewals saved in one certbot process (one `certbot renew` run), against the count
    the sidecar expects it to save (EXPECTED_ENV; None: start the app at every one)."""

    expected: int | None
    saved: int = 0

    def one_saved(self) -> bool:
        """Count a saved renewal; True once the last one expected is saved."""
        self.saved += 1
        return self.expected is None or self.saved >= self.expected


@functools.cache
def this_run() -> Renewals:
    """This certbot process's count: certbot makes a new plugin for every lineage it renews,
    so the count lives with the process, not with a plugin."""
    expected = os.environ.get(EXPECTED_ENV, "")
    return Renewals(int(expected) if expected.isdigit() else None)


def stop_app(context: InCertbot, reason: str) -> list[str]:
    return outage.stop_targets(context.tree.paths.state_dir, context.control, reason)


def start_app(context: InCertbot) -> list[str]:
    tree = context.tree
    # the new files readable by the app before it starts
    access.apply_safely(tree.paths.config_dir, tree.domains, tree.policy)
    return outage.restore(tree.paths.state_dir, context.control)


def port_busy_message(port: int) -> str:
    """Why port `port` could not be bound, naming the container that publishes it if any."""
    holders = ""
    try:
        holders = ", ".join(publishers(port))
    except SidecarError as error:
        logger.debug("cannot ask Docker who publishes port {}: {}", port, error)
    who = (
        f"{holders} publishes it"
        if holders
        else (f"another process on the host holds it (`ss -ltnp 'sport = :{port}'` shows which)")
    )
    fix = "add that container to APP_CONTAINERS/APP_LABEL or free the port"
    if "service " in holders:
        fix = (
            "add that service to APP_SERVICES/APP_LABEL (a global service cannot be scaled to 0: "
            "publish the port on other nodes only, or use CHALLENGE=webroot)"
        )
    return f"port {port} {PORT_BUSY_TEXT}: {who}; {fix}"
